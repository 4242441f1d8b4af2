// End-to-end: a person who is not an app user gets a Teams meeting guest token on the guest page,
// in real headless Chromium through the SWA CLI in front of the whole local stack. Outcomes are
// checked on the page and at the ACS emulator (which says what the token grants and until when).
//
//   node tests/e2e/guest_flow.mjs [--stack FILE] [--site URL] [--artifacts DIR] [--scenario on|off]
//
// --scenario on (default): guest access is on. --scenario off: the site's function host has guest
// access off (the deployment default), and the page must say so.
// Prints one JSON line of results (never a token) and exits 0 when every check passed.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { emulatorClient, readOptions, recordMessages, messagesSeen, runInBrowser, textOf } from "./browser_kit.mjs";

const options = readOptions();
const emulator = emulatorClient(options.stack);
const GUEST_PATH = "/api/guest/token";
const isGuestRequest = (request) => new URL(request.url()).pathname === GUEST_PATH && request.method() === "POST";

/** Counts the page's guest token requests, so a check can say "nothing was sent". */
function countGuestRequests(page) {
  const seen = { count: 0 };
  page.on("request", (request) => {
    if (isGuestRequest(request)) {
      seen.count += 1;
    }
  });
  return seen;
}

async function openGuestPageFromSignIn(page, kit) {
  await page.goto(new URL("/signin.html", options.site).href);
  await page.getByRole("link", { name: "join as a guest" }).click();
  await page.waitForURL((url) => url.pathname === "/guest.html");
  await page.getByRole("heading", { name: "Join a Teams meeting as a guest" }).waitFor();
  kit.step("the sign-in page leads to the guest page without signing in", { landedOn: new URL(page.url()).pathname });
}

async function guestAccessOn(context, kit) {
  const page = kit.watch(context.pages()[0] ?? (await context.newPage()));
  const requests = countGuestRequests(page);
  await openGuestPageFromSignIn(page, kit);
  await recordMessages(page);

  // A name the service would refuse is refused in the page, and nothing is sent.
  const name = page.getByLabel("Name shown in the meeting");
  await name.fill("<b>Mallory</b>");
  await page.getByRole("button", { name: "Get a guest token" }).click();
  await page.locator("#error").filter({ hasText: "not allowed" }).waitFor();
  assert.equal(await name.getAttribute("aria-invalid"), "true", "the field is marked invalid");
  assert.equal(requests.count, 0, "a refused name sends no request");
  kit.step("a name with markup is refused in the page and nothing is sent", {
    error: await textOf(page, "#error"),
    requestsSent: requests.count,
  });

  // A valid name: one request, a guest token for a new identity, shown with its scope and countdown.
  const typed = `Ada Lovelace-${randomUUID().slice(0, 4)}`;
  await name.fill(`  ${typed} `);
  const answered = page.waitForResponse((response) => isGuestRequest(response.request()));
  const before = Date.now();
  await page.getByRole("button", { name: "Get a guest token" }).click();
  const response = await answered;
  assert.equal(response.status(), 200, `POST ${GUEST_PATH} answered ${response.status()}`);
  assert.match(response.headers()["cache-control"] || "", /no-store/, "guest token answers are not cached");
  const issued = await response.json();
  kit.tokens.push(issued.token);
  assert.equal(JSON.parse(response.request().postData()).displayName, typed, "the name is sent trimmed");

  await page.locator("#token-id").filter({ hasText: issued.token.slice(-6) }).waitFor();
  await page.locator("#status").filter({ hasText: "Guest token issued" }).waitFor();
  assert.equal(await textOf(page, "#communication-user-id"), issued.communicationUserId);
  assert.equal(await textOf(page, "#guest-name"), typed);
  assert.equal(await textOf(page, "#scopes"), "voip.join", "the page shows the scope the token grants");
  const expiresOn = Date.parse(await page.locator("#expires-on").getAttribute("datetime"));
  const minutesLeft = (expiresOn - before) / 60_000;
  assert.ok(minutesLeft > 0 && minutesLeft <= 60.5, `the page shows an expiry within 60 minutes (${minutesLeft})`);
  assert.match(await textOf(page, "#expires-in"), /^\(\d+ min \d{2} s left\)$/, "the countdown runs, under an hour");
  assert.ok(!(await page.content()).includes(issued.token), "the token itself is never on the page");

  const check = await emulator.verify(issued.token);
  assert.equal(check.valid, true, `the guest token verifies at ACS (reason ${check.reason})`);
  assert.equal(check.communicationUserId, issued.communicationUserId);
  assert.deepEqual(check.scopes, ["voip.join"], "ACS says the token grants voip.join only");
  const acsMinutes = (Date.parse(check.expiresOn) - before) / 60_000;
  assert.ok(acsMinutes <= 60.5, `ACS says it lasts at most 60 minutes (${acsMinutes})`);
  assert.ok((await emulator.identities()).includes(issued.communicationUserId), "the guest identity exists at ACS");
  assert.equal(requests.count, 1, "one request for one guest token");

  const explainer = await textOf(page, "#join-explainer");
  assert.match(explainer, /Calling SDK/);
  assert.match(explainer, /callAgent\.join/);
  const seen = await messagesSeen(page);
  assert.deepEqual(seen.errors.filter((text) => !text.includes("not allowed")), [], "no error after the valid name");
  kit.step("a guest gets a voip.join token of at most 60 minutes, shown with its countdown", {
    scopes: await textOf(page, "#scopes"),
    acsScopes: check.scopes,
    minutesLeft: Math.round(minutesLeft * 10) / 10,
    acsMinutes: Math.round(acsMinutes * 10) / 10,
    displayName: await textOf(page, "#guest-name"),
    requestsSent: requests.count,
    joinExplainer: explainer,
  });
  await kit.screenshot(page, "guest-token");
}

async function guestAccessOff(context, kit) {
  const page = kit.watch(context.pages()[0] ?? (await context.newPage()));
  kit.expectedNetworkNotes.push({ status: 404, path: GUEST_PATH });
  const requests = countGuestRequests(page);
  await openGuestPageFromSignIn(page, kit);
  const before = await emulator.identities();
  await page.getByLabel("Name shown in the meeting").fill("Grace Hopper");
  const answered = page.waitForResponse((response) => isGuestRequest(response.request()));
  await page.getByRole("button", { name: "Get a guest token" }).click();
  const response = await answered;
  assert.equal(response.status(), 404);
  assert.equal((await response.json()).error.code, "GuestAccessDisabled");
  await page.locator("#error").filter({ hasText: "guest access is off" }).waitFor();
  assert.equal(requests.count, 1, "a refusal is not retried");
  assert.equal(await textOf(page, "#token-id"), "None");
  assert.deepEqual((await emulator.identities()).sort(), before.sort(), "no identity was made");
  kit.step("with guest access off the page says so and asks once", { error: await textOf(page, "#error"), requestsSent: requests.count });
  await kit.screenshot(page, "guest-access-off");
}

await runInBrowser(options, options.scenario === "off" ? guestAccessOff : guestAccessOn);
