// What the page shows about a token, checked without a browser: `node --test web/test/`.

import assert from "node:assert/strict";
import { test } from "node:test";
import { describeRemaining } from "../src/countdown.js";
import { grantedScopes, readClaims, tokenId } from "../src/token-details.js";

function jwt(claims) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "RS256", typ: "JWT" })}.${part(claims)}.c2lnbmF0dXJl`;
}

test("granted scopes come from the token's acsScope claim, not from the request", () => {
  const token = jwt({ scp: 1792, acsScope: "chat,voip", exp: 2_000_000_000 });
  assert.deepEqual(grantedScopes(token, ["chat", "voip", "voip.join"]), { scopes: ["chat", "voip"], source: "token" });
});

test("a textual scp claim is used when there is no acsScope", () => {
  assert.deepEqual(grantedScopes(jwt({ scp: "chat.join" }), ["chat"]), { scopes: ["chat.join"], source: "token" });
});

test("a token the page cannot read shows what was asked for, marked as such", () => {
  assert.deepEqual(grantedScopes("opaque-token", ["voip"]), { scopes: ["voip"], source: "requested" });
  assert.deepEqual(grantedScopes(jwt({ scp: 1792 }), ["chat"]), { scopes: ["chat"], source: "requested" });
});

test("claims with non-ASCII text decode intact", () => {
  assert.equal(readClaims(jwt({ name: "Zoë 東京" })).name, "Zoë 東京");
  assert.equal(readClaims("not.a-jwt"), null);
});

test("the token id is the token's last six characters", () => {
  assert.equal(tokenId("abc.def.ghijklmnop"), "klmnop");
});

test("time left reads in hours, minutes and seconds, and says when it is over", () => {
  assert.equal(describeRemaining(59 * 60_000 + 58_500), "59 min 58 s");
  assert.equal(describeRemaining(3_723_000), "1 h 02 min 03 s");
  assert.equal(describeRemaining(0), "expired");
  assert.equal(describeRemaining(-5), "expired");
});
