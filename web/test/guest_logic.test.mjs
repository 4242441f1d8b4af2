// The guest page's checks of a typed name and the page's explanations of refusal codes, without a
// browser: `node --test web/test/`.

import assert from "node:assert/strict";
import { test } from "node:test";
import { displayNameProblem, trimSpaces } from "../src/display-name.js";
import { explainCode } from "../src/explanations.js";

test("ordinary names in any script pass", () => {
  for (const name of ["Ada", "Anne-Marie O'Brien", "Zoë Łukasiewicz", "東京 太郎", "Dr. Who (guest)", "A & B", "José", "  Padded  "]) {
    assert.equal(displayNameProblem(name), null, name);
  }
});

test("names the service refuses are refused in the page first, with the reason", () => {
  assert.equal(displayNameProblem(""), "is empty");
  assert.equal(displayNameProblem("    "), "is empty");
  assert.equal(displayNameProblem("x".repeat(65)), "is longer than 64 characters");
  assert.equal(displayNameProblem("x".repeat(64)), null);
  assert.equal(displayNameProblem("<script>"), "contains a character that is not allowed (“<”)");
  assert.equal(displayNameProblem("Eve\u202Eevil"), "contains a character that is not allowed (U+202E)");
  assert.equal(displayNameProblem("tab\there"), "contains a character that is not allowed (U+0009)");
  assert.equal(displayNameProblem("half \uD800 pair"), "contains a character that is not allowed (U+D800)");
  assert.equal(displayNameProblem("a  b"), "has two spaces in a row");
  assert.equal(displayNameProblem("--"), "has no letter or digit");
  assert.equal(displayNameProblem("\u0301a"), "starts with an accent");
  assert.equal(displayNameProblem("a\u0301\u0301\u0301\u0301\u0301"), "has too many accents on one letter");
  assert.equal(displayNameProblem("🙂"), "contains a character that is not allowed (“🙂”)");
});

test("a name is sent without its surrounding spaces, as the service keeps it", () => {
  assert.equal(trimSpaces("  Ada Lovelace "), "Ada Lovelace");
});

test("every refusal code the service documents for people is explained", () => {
  for (const code of ["RoleRequired", "ProviderNotAllowed", "TenantNotAllowed", "EmailDomainNotAllowed", "AccountDeleted",
    "ScopeNotAllowed", "LifetimeNotAllowed", "NotAdmin"]) {
    assert.match(explainCode(403, code), /\w+/, code);
  }
  assert.match(explainCode(404, "GuestAccessDisabled"), /guest access is off/);
  assert.match(explainCode(403, "SomethingNew"), /does not allow this/);
  assert.equal(explainCode(404, "IdentityNotFound"), undefined);
});
