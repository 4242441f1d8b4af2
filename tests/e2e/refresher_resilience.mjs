// End-to-end: the credential's proactive refresh rides out passing failures of the token service
// in real headless Chromium, through the SWA CLI, with nothing shown as a failure.
//
//   node tests/e2e/refresher_resilience.mjs --stack FILE --site URL [--artifacts DIR]
//
// The site must front a function host with TOKEN_REUSE_SECONDS=0 (every refresh reaches ACS) and
// guest access on with a small per-client guest budget (test_refresher_resilience.py starts one).
//
// 1. A signed-in member: the ACS emulator answers the next issues with 503 (an injected burst);
//    the service's own retries absorb part of it and answer the page 503 with Retry-After; the
//    page's refresher waits each out and gets the next token.
// 2. A guest: the guest budget is spent by other requests from the same client while the page's
//    refresher asks; it gets 429 GuestBudgetExceeded with Retry-After, waits, and gets a token.
//
// The refresh is the credential's own, on its own timer: the browser's clock is Playwright's
// (page.clock), moved forward 50.5 minutes to the credential's refresh time. Waits in the page
// (Retry-After) then run in real time. Faults are the emulator's (POST /_emulator/faults) and the
// 429 is the service's real guest budget: nothing is mocked.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { emulatorClient, messagesSeen, readOptions, recordMessages, runInBrowser, textOf } from "./browser_kit.mjs";

const options = readOptions();
const emulator = emulatorClient(options.stack);
const REFRESH_TIME = "50:30"; // the credential refreshes a 60-minute token 10 minutes before it expires
const DRAIN_HEADER = "x-test-budget-drain";

/** Every answer to the page's own POSTs to `path` (not the test's drain), with when it was asked and answered. */
function exchangesOn(page, path) {
  const seen = [];
  const asked = new Map();
  page.on("request", (request) => {
    if (new URL(request.url()).pathname === path && request.method() === "POST" && !request.headers()[DRAIN_HEADER]) {
      asked.set(request, Date.now());
    }
  });
  page.on("response", (response) => {
    const request = response.request();
    if (asked.has(request)) {
      const retryAfter = response.headers()["retry-after"];
      seen.push({
        status: response.status(),
        retryAfter: retryAfter === undefined ? null : Number(retryAfter),
        askedAt: asked.get(request),
        answeredAt: Date.now(),
      });
    }
  });
  return seen;
}

/** Each retry came no sooner than the Retry-After of the answer before it. */
function assertRetryAfterHonoured(exchanges) {
  for (let i = 1; i < exchanges.length; i += 1) {
    const before = exchanges[i - 1];
    assert.ok(before.retryAfter !== null, `answer ${i} (${before.status}) carried Retry-After`);
    const waitedMs = exchanges[i].askedAt - before.answeredAt;
    assert.ok(waitedMs >= before.retryAfter * 1000 - 50, `retry ${i} came after ${waitedMs} ms, Retry-After was ${before.retryAfter} s`);
  }
}

async function tokenShown(page) {
  return textOf(page, "#token-id");
}

async function memberRidesOut503Burst(context, kit) {
  const page = kit.watch(await context.newPage());
  kit.expectedNetworkNotes.push({ status: 503, path: "/api/token" });
  await page.goto(new URL("/", options.site).href);
  await page.waitForURL((url) => url.pathname === "/signin.html");
  await page.getByRole("link", { name: "Sign in with Microsoft" }).click();
  await page.waitForURL((url) => url.pathname === "/.auth/login/aad");
  await page.locator("#userDetails").pressSequentially(`resilience-${randomUUID().slice(0, 8)}@example.test`);
  const firstAnswer = page.waitForResponse((r) => new URL(r.url()).pathname === "/api/token");
  await page.getByRole("button", { name: "Login" }).click();
  const first = await (await firstAnswer).json();
  kit.tokens.push(first.token);
  await page.locator("#token-id").filter({ hasText: first.token.slice(-6) }).waitFor();
  await recordMessages(page);

  // ACS answers the next issues with 503: more than the service's own retries absorb. The faults
  // are the shared emulator's, so none may outlive this part, whatever happens in it.
  const exchanges = exchangesOn(page, "/api/token");
  const issuedBefore = await emulator.issued();
  await emulator.addFault({ status: 503, count: 8, retryAfterSeconds: 1, operations: ["issueAccessToken"] });
  let leftOver;
  try {
    await page.clock.fastForward(REFRESH_TIME);
    await page.locator("#status").filter({ hasText: "Your token was renewed" }).waitFor({ timeout: 90_000 });
  } finally {
    leftOver = await emulator.faults();
    await emulator.clearFaults();
  }

  const statuses = exchanges.map((e) => e.status);
  const seen = await messagesSeen(page);
  assert.ok(statuses.length >= 2 && statuses.at(-1) === 200, `the page's requests: ${statuses}`);
  assert.ok(statuses.slice(0, -1).every((s) => s === 503), `only 503s before the token: ${statuses}`);
  assertRetryAfterHonoured(exchanges);
  assert.deepEqual(leftOver, [], "the whole injected burst was used up");
  assert.deepEqual(seen.errors, [], "the page never showed an error");
  assert.ok(await page.locator("#error").isHidden());
  assert.ok(
    seen.statuses.some((text) => /^Renewing your token: the token service is briefly unavailable\. Trying again in \d+ s\. The token you have keeps working until .+\.$/.test(text)),
    `the page said what was happening: ${JSON.stringify(seen.statuses)}`,
  );
  // A new token is one ACS issued after the burst (counted at the emulator: it holds where ACS
  // gives identical strings within a second too); the page then shows it.
  assert.equal((await emulator.issued()) - issuedBefore, 1, "ACS issued exactly one token, once the burst was used up");
  const renewedId = await tokenShown(page);
  assert.notEqual(renewedId, first.token.slice(-6), "the page shows a new token");
  // The device's clock is now 50.5 minutes ahead of the service's; the countdown still shows the
  // new token's real remaining lifetime (read against the service's Date header).
  const countdown = await textOf(page, "#expires-in");
  assert.match(countdown, /^\(59 min \d{2} s left\)$/);
  assert.equal(await textOf(page, "#communication-user-id"), first.communicationUserId, "same identity");
  kit.step("a member's proactive refresh rides out an injected 503 burst without a visible failure", {
    statuses,
    retryAfters: exchanges.map((e) => e.retryAfter),
    waitsMs: exchanges.slice(1).map((e, i) => e.askedAt - exchanges[i].answeredAt),
    errorsShown: seen.errors,
    statusMessages: seen.statuses,
    countdown,
  });
  await kit.screenshot(page, "refresh-after-503-burst");
  await page.close();
}

async function guestRidesOut429(context, kit) {
  const page = kit.watch(await context.newPage());
  kit.expectedNetworkNotes.push({ status: 429, path: "/api/guest/token" });
  await page.goto(new URL("/guest.html", options.site).href);
  await page.getByLabel("Name shown in the meeting").fill("Resilient Guest");
  const firstAnswer = page.waitForResponse((r) => new URL(r.url()).pathname === "/api/guest/token");
  await page.getByRole("button", { name: "Get a guest token" }).click();
  const first = await (await firstAnswer).json();
  kit.tokens.push(first.token);
  await page.locator("#token-id").filter({ hasText: first.token.slice(-6) }).waitFor();
  await recordMessages(page);

  // Other requests from the same client spend its guest budget until the page's refresh has been
  // refused once (in the page, so they come from the same address through the same proxy).
  const exchanges = exchangesOn(page, "/api/guest/token");
  const drain = page.evaluate(async (header) => {
    window.__drain = { stop: false, sent: 0, refused: 0 };
    while (!window.__drain.stop && window.__drain.sent < 500) {
      const response = await fetch("/api/guest/token", {
        method: "POST",
        headers: { "Content-Type": "application/json", [header]: "1" },
        body: JSON.stringify({ displayName: "Budget Drain" }),
      });
      window.__drain.sent += 1;
      if (response.status === 429) {
        window.__drain.refused += 1;
      }
    }
    return window.__drain;
  }, DRAIN_HEADER);
  await page.waitForFunction(() => window.__drain?.refused > 0, null, { polling: 100 });
  const refused = page.waitForResponse((r) => r.request().postData()?.includes("Resilient Guest"));
  await page.clock.fastForward(REFRESH_TIME);
  await refused;
  await page.evaluate(() => {
    window.__drain.stop = true;
  });
  const drained = await drain;
  await page.locator("#status").filter({ hasText: "Your guest token was renewed" }).waitFor({ timeout: 90_000 });

  const statuses = exchanges.map((e) => e.status);
  const seen = await messagesSeen(page);
  assert.ok(statuses.length >= 2 && statuses.at(-1) === 200, `the page's requests: ${statuses}`);
  assert.ok(statuses.slice(0, -1).every((s) => s === 429), `only 429s before the token: ${statuses}`);
  assertRetryAfterHonoured(exchanges);
  assert.deepEqual(seen.errors, [], "the page never showed an error");
  assert.ok(await page.locator("#error").isHidden());
  assert.ok(
    seen.statuses.some((text) => /^Renewing your token: the token service is pacing requests\. Trying again in \d+ s\./.test(text)),
    `the page said what was happening: ${JSON.stringify(seen.statuses)}`,
  );
  assert.notEqual(await tokenShown(page), first.token.slice(-6), "the page shows a new token");
  assert.notEqual(await textOf(page, "#communication-user-id"), first.communicationUserId, "a renewal is a new guest identity");
  assert.equal(await textOf(page, "#scopes"), "voip.join");
  kit.step("a guest's proactive refresh rides out a 429 with Retry-After without a visible failure", {
    statuses,
    retryAfters: exchanges.map((e) => e.retryAfter),
    waitsMs: exchanges.slice(1).map((e, i) => e.askedAt - exchanges[i].answeredAt),
    drainRequests: drained.sent,
    errorsShown: seen.errors,
    statusMessages: seen.statuses,
  });
  await kit.screenshot(page, "refresh-after-429");
}

await runInBrowser(options, async (context, kit) => {
  // Before any page loads, so the credential's timers run on the clock the test moves.
  await context.clock.install();
  await memberRidesOut503Burst(context, kit);
  await guestRidesOut429(context, kit);
});
