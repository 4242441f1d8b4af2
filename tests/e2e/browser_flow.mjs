// End-to-end: a person in real headless Chromium uses the token page through the SWA CLI in front
// of the whole local stack (function host, ACS emulator, Tables). Every outcome is checked where
// it really happens: on the page, and at the ACS emulator, which says whether a token verifies.
//
//   node tests/e2e/browser_flow.mjs [--stack local.stack.json] [--artifacts test-artifacts/e2e]
//
// Prints one JSON line of results (never a token) and exits 0 when every check passed. The
// browser, the offline request routing (jQuery for the CLI's sign-in page served locally) and
// the report are browser_kit.mjs's.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { emulatorClient, readOptions, runInBrowser, textOf } from "./browser_kit.mjs";

const options = readOptions();
const emulator = emulatorClient(options.stack);

/** Runs `action` and returns the JSON body of the page's POST /api/token that it causes. */
async function tokenIssuedBy(kit, page, action) {
  const response = page.waitForResponse(
    (r) => new URL(r.url()).pathname === "/api/token" && r.request().method() === "POST",
  );
  await action();
  const answer = await response;
  assert.equal(answer.status(), 200, `POST /api/token answered ${answer.status()}`);
  assert.match(answer.headers()["cache-control"] || "", /no-store/, "token responses must not be cached");
  const body = await answer.json();
  kit.tokens.push(body.token);
  return body;
}

/** The scopes the page says the token grants, in a fixed order. */
async function shownScopes(page) {
  return (await textOf(page, "#scopes")).split(",").map((s) => s.trim()).sort();
}

async function waitForText(page, selector, expected) {
  await page.locator(selector).filter({ hasText: expected }).waitFor();
}

async function assertPageShowsToken(page, issued) {
  await waitForText(page, "#token-id", issued.token.slice(-6));
  assert.equal(await textOf(page, "#communication-user-id"), issued.communicationUserId);
  const expiresOn = Date.parse(await page.locator("#expires-on").getAttribute("datetime"));
  assert.ok(expiresOn > Date.now(), "the page shows an expiry in the future");
  assert.match(await textOf(page, "#expires-in"), /^\(\d+ (h|min) .* left\)$/, "the countdown runs");
  const html = await page.content();
  assert.ok(!html.includes(issued.token), "the token itself is never on the page");
  return expiresOn;
}

async function walkThrough(context, kit) {
  const page = kit.watch(context.pages()[0] ?? (await context.newPage()));
  // Chromium itself notes every HTTP error answer in the console. After the identity is deleted,
  // GET /api/identity answering 404 is the expected outcome, not something the app logged.
  kit.expectedNetworkNotes.push({ status: 404, path: "/api/identity" });

  // 1. Not signed in: the page sends the visitor to sign in.
  await page.goto(new URL("/", options.site).href);
  await page.waitForURL((url) => url.pathname === "/signin.html");
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  kit.step("unauthenticated visit is sent to sign-in", { landedOn: new URL(page.url()).pathname });

  // 2. Sign in on the SWA CLI's own sign-in page (its provider is taken from the URL).
  await page.getByRole("link", { name: "Sign in with Microsoft" }).click();
  await page.waitForURL((url) => url.pathname === "/.auth/login/aad");
  const userName = `e2e-${randomUUID().slice(0, 8)}@example.test`;
  // The CLI's page stores each field on keyup, so type the name rather than paste it.
  await page.locator("#userDetails").pressSequentially(userName);
  assert.equal(await page.locator("#identityProvider").inputValue(), "aad", "the CLI's page ran its script");
  const first = await tokenIssuedBy(kit, page, () => page.getByRole("button", { name: "Login" }).click());
  await page.waitForURL((url) => url.pathname === "/");
  assert.equal(await textOf(page, "#user-name"), userName);
  assert.match(first.communicationUserId, /^8:acs:/);
  const firstExpiry = await assertPageShowsToken(page, first);
  assert.deepEqual(await shownScopes(page), ["chat", "voip"], "the page shows the granted scopes");
  const firstCheck = await emulator.verify(first.token);
  assert.equal(firstCheck.valid, true, `first token verifies (reason ${firstCheck.reason})`);
  assert.equal(firstCheck.communicationUserId, first.communicationUserId);
  kit.step("signed in and shown an identity with a future expiry", {
    expiresInMinutes: Math.round((firstExpiry - Date.now()) / 60_000),
    scopes: await textOf(page, "#scopes"),
  });
  await kit.screenshot(page, "signed-in");

  // 3. Refresh: a new token for the same identity, asking for calling only.
  await page.getByLabel("Chat (chat)").uncheck();
  const second = await tokenIssuedBy(kit, page, () => page.getByRole("button", { name: "Get a new token" }).click());
  assert.notEqual(second.token, first.token, "refresh brings a new token");
  assert.equal(second.communicationUserId, first.communicationUserId, "refresh keeps the identity");
  await assertPageShowsToken(page, second);
  assert.deepEqual(await shownScopes(page), ["voip"], "the page shows the new scopes");
  const secondCheck = await emulator.verify(second.token);
  assert.equal(secondCheck.valid, true, `refreshed token verifies (reason ${secondCheck.reason})`);
  kit.step("refresh gives a new token for the same identity", { scopes: await textOf(page, "#scopes") });

  // 4. Revoke: every token issued so far is revoked at ACS. What is checked is ACS's record
  // (the emulator's `revoked`: issued before the revocation), not whether ACS refuses the token
  // yet: real ACS may accept a revoked token for up to 15 minutes while the revocation
  // propagates (learn.microsoft.com/azure/communication-services/concepts/identity-model), so
  // `valid` is not asserted; the walk-through runs with the emulator delaying enforcement so.
  const revoked = page.waitForResponse((r) => new URL(r.url()).pathname === "/api/token/revoke");
  await page.getByRole("button", { name: "Revoke all my tokens" }).click();
  assert.equal((await revoked).status(), 204);
  await waitForText(page, "#status", "revoked");
  for (const [name, token] of [["first", first.token], ["second", second.token]]) {
    const check = await emulator.verify(token);
    assert.equal(check.revoked, true, `${name} token is recorded revoked at ACS (reason ${check.reason})`);
  }
  assert.equal(await textOf(page, "#token-id"), "None (all tokens revoked)");
  kit.step("tokens issued before revoking are revoked at ACS");

  // 5. A new token after revoking still belongs to the same identity, and works.
  const third = await tokenIssuedBy(kit, page, () => page.getByRole("button", { name: "Get a new token" }).click());
  assert.equal(third.communicationUserId, first.communicationUserId);
  await assertPageShowsToken(page, third);
  const thirdCheck = await emulator.verify(third.token);
  assert.equal(thirdCheck.valid, true, `a token issued after revoke verifies (reason ${thirdCheck.reason})`);
  kit.step("a token issued after revoking works");

  // 6. Delete: the identity is gone from ACS, and its last token with it.
  page.once("dialog", (dialog) => dialog.accept());
  const deleted = page.waitForResponse(
    (r) => new URL(r.url()).pathname === "/api/identity" && r.request().method() === "DELETE",
  );
  await page.getByRole("button", { name: "Delete my identity" }).click();
  assert.equal((await deleted).status(), 204);
  await waitForText(page, "#status", "deleted");
  assert.equal(await textOf(page, "#communication-user-id"), "None (deleted)");
  const identityStatus = await page.evaluate(async () => (await fetch("/api/identity")).status);
  assert.equal(identityStatus, 404, "the service no longer knows an identity for this person");
  assert.ok(!(await emulator.identities()).includes(first.communicationUserId), "ACS no longer has the identity");
  // ACS's record: the identity the token names is deleted (deleting revokes its tokens; real
  // ACS may take up to 15 minutes to refuse them, so `valid` is not asserted).
  const thirdAfterDelete = await emulator.verify(third.token);
  assert.equal(thirdAfterDelete.reason, "deleted", "the token names an identity ACS deleted");
  kit.step("deleted identity is gone and its token names a deleted identity");
  await kit.screenshot(page, "identity-deleted");

  // 7. Sign out: the page is out of reach again.
  await page.getByRole("link", { name: "Sign out" }).click();
  await page.waitForURL((url) => url.pathname === "/signin.html");
  await page.goto(new URL("/", options.site).href);
  await page.waitForURL((url) => url.pathname === "/signin.html");
  kit.step("signed out and sent to sign-in again");

  // Nothing went to the console on the app's pages, and no token ever did anywhere.
  assert.deepEqual(kit.appConsole, [], "the app's pages write nothing to the console");
}

await runInBrowser(options, walkThrough);
