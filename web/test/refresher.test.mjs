// The tokenRefresher's retry policy, checked without a browser: `node --test web/test/`.
// Waiting is replaced by a recorder (no test sleeps), and the token service's answers are
// TokenServiceErrors as token-service.js builds them from HTTP answers; the credential is the real
// AzureCommunicationTokenCredential from @azure/communication-common.

import assert from "node:assert/strict";
import { test } from "node:test";
import { AzureCommunicationTokenCredential } from "@azure/communication-common";
import { RETRY_POLICY, nextStep, sleep, withRetries } from "../src/retry-policy.js";
import { EXPIRY_MARGIN_MS, FOREGROUND_WAIT_MS, createRefresher } from "../src/token-refresher.js";
import { localExpiresOn } from "../src/token-details.js";
import { TokenServiceError, parseRetryAfter } from "../src/token-service.js";

const MINUTE = 60_000;
const busy = (status, retryAfterSeconds) =>
  new TokenServiceError(`HTTP ${status}`, { status, code: status === 429 ? "TooManyRequests" : "ServiceUnavailable", retryAfterSeconds });
const unreachable = () => new TokenServiceError("The token service could not be reached.", { code: "NetworkError" });
const signInEnded = () => new TokenServiceError("Your sign-in has ended.", { status: 401, code: "Unauthenticated", signInRequired: true });

/** A fake clock whose waits only move time forward and are recorded. */
function fakeTime(start = Date.parse("2026-05-01T12:00:00Z")) {
  const clock = { now: start, waits: [] };
  clock.read = () => clock.now;
  clock.wait = async (ms) => {
    clock.waits.push(ms);
    clock.now += ms;
  };
  return clock;
}

/** A token service that answers with `answers` in turn (errors are thrown), counting calls. */
function service(...answers) {
  const calls = { count: 0 };
  calls.obtain = async () => {
    const answer = answers[Math.min(calls.count, answers.length - 1)];
    calls.count += 1;
    if (answer instanceof Error) {
      throw answer;
    }
    return answer;
  };
  return calls;
}

function jwt(claims) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "RS256", typ: "JWT" })}.${part(claims)}.c2lnbmF0dXJl`;
}

function issued(now, minutes = 60, name = "new") {
  const expiresOn = new Date(now + minutes * MINUTE).toISOString();
  return { communicationUserId: "8:acs:x_y", token: jwt({ exp: Math.floor((now + minutes * MINUTE) / 1000), name }), expiresOn };
}

// ---- the policy, one answer at a time ------------------------------------------------------

test("a 429 or 503 is retried no sooner than its Retry-After", () => {
  for (const status of [429, 503]) {
    for (const random of [0, 0.5, 0.999999]) {
      const step = nextStep(busy(status, 7), 0, () => random);
      assert.equal(step.action, "retry");
      assert.equal(step.reason, "retry-after");
      assert.ok(step.delayMs >= 7000, `${status}: waited ${step.delayMs} ms, less than Retry-After`);
    }
  }
});

test("the jitter on top of Retry-After is at most a fifth of it and never over three seconds", () => {
  const samples = (seconds) => [0, 0.25, 0.5, 0.75, 0.999999].map((r) => nextStep(busy(503, seconds), 0, () => r).delayMs);
  assert.deepEqual(samples(5).map((ms) => ms - 5000 <= 1000), [true, true, true, true, true]);
  assert.equal(Math.max(...samples(5)), 6000);
  assert.equal(Math.max(...samples(30)), 33_000);
  // Two clients told the same Retry-After do not come back at the same moment.
  assert.notEqual(nextStep(busy(429, 10), 0, () => 0.1).delayMs, nextStep(busy(429, 10), 0, () => 0.9).delayMs);
});

test("an absurd Retry-After is waited for at most a minute (plus jitter)", () => {
  const step = nextStep(busy(503, 86_400), 0, () => 0.999999);
  assert.ok(step.delayMs <= RETRY_POLICY.maxRetryAfterMs + RETRY_POLICY.maxJitterMs, `${step.delayMs}`);
});

test("a network error is retried with exponential backoff, jittered and capped at 30 s", () => {
  const low = [0, 1, 2, 3, 4, 5, 6].map((attempt) => nextStep(unreachable(), attempt, () => 0).delayMs);
  const high = [0, 1, 2, 3, 4, 5, 6].map((attempt) => nextStep(unreachable(), attempt, () => 0.999999).delayMs);
  assert.deepEqual(low, [500, 1000, 2000, 4000, 8000, 15_000, 15_000]);
  assert.deepEqual(high, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
  assert.equal(nextStep(unreachable(), 0).reason, "backoff");
});

test("a 503 without Retry-After, a 502 and a 504 are retried with backoff", () => {
  for (const status of [500, 502, 503, 504, 408]) {
    assert.deepEqual(nextStep(busy(status, undefined), 1, () => 0), { action: "retry", delayMs: 1000, reason: "backoff" });
  }
});

test("a 401 sends the person to sign in instead of retrying", () => {
  assert.deepEqual(nextStep(signInEnded(), 0), { action: "sign-in" });
});

test("refusals (400, 403, 404) are not retried: asking again cannot change them", () => {
  for (const [status, code] of [[400, "InvalidDisplayName"], [403, "RoleRequired"], [404, "GuestAccessDisabled"]]) {
    assert.deepEqual(nextStep(new TokenServiceError("no", { status, code }), 0), { action: "stop" });
  }
});

test("Retry-After is read as seconds or as an HTTP date", () => {
  const now = Date.parse("2026-05-01T12:00:00Z");
  assert.equal(parseRetryAfter("7", now), 7);
  assert.equal(parseRetryAfter(" 0 ", now), 0);
  assert.equal(parseRetryAfter("Fri, 01 May 2026 12:00:30 GMT", now), 30);
  assert.equal(parseRetryAfter("Fri, 01 May 2026 11:59:00 GMT", now), 0);
  assert.equal(parseRetryAfter("soon", now), undefined);
  assert.equal(parseRetryAfter(null, now), undefined);
});

// ---- the loop -----------------------------------------------------------------------------

test("a 503 burst and a 429 are waited out and the token that follows is returned", async () => {
  const clock = fakeTime();
  const token = issued(clock.now);
  const answers = service(busy(503, 2), busy(503, 2), busy(429, 5), token);
  const retries = [];
  const result = await withRetries(answers.obtain, {
    deadline: clock.now + 10 * MINUTE,
    now: clock.read,
    wait: clock.wait,
    random: () => 0.5,
    onRetry: (info) => retries.push([info.error.status, info.attempt, info.delayMs]),
  });
  assert.equal(result, token);
  assert.equal(answers.count, 4, "one request per answer, no more");
  assert.deepEqual(retries, [[503, 1, 2200], [503, 2, 2200], [429, 3, 5500]]);
  assert.deepEqual(clock.waits, [2200, 2200, 5500]);
});

test("a 401 during a refresh is not retried: one request, and the error says sign in", async () => {
  const clock = fakeTime();
  const answers = service(signInEnded(), issued(clock.now));
  await assert.rejects(
    withRetries(answers.obtain, { deadline: clock.now + MINUTE, now: clock.read, wait: clock.wait }),
    (error) => error.signInRequired === true && error.gaveUp === undefined,
  );
  assert.equal(answers.count, 1);
  assert.deepEqual(clock.waits, []);
});

test("no retry is made after the deadline: a Retry-After beyond it ends the refresh at once", async () => {
  const clock = fakeTime();
  const answers = service(busy(503, 45), issued(clock.now));
  await assert.rejects(
    withRetries(answers.obtain, { deadline: clock.now + 30_000, now: clock.read, wait: clock.wait, random: () => 0 }),
    (error) => error.status === 503 && error.gaveUp === true,
  );
  assert.equal(answers.count, 1);
  assert.deepEqual(clock.waits, []);
});

test("a service that keeps failing gets a bounded number of requests", async () => {
  const clock = fakeTime();
  const answers = service(unreachable());
  await assert.rejects(
    withRetries(answers.obtain, { deadline: clock.now + 24 * 60 * MINUTE, now: clock.read, wait: clock.wait }),
    (error) => error.gaveUp === true,
  );
  assert.equal(answers.count, RETRY_POLICY.maxAttempts);
});

test("an abort ends a wait at once", async () => {
  const stop = new AbortController();
  const waiting = sleep(60_000, stop.signal);
  stop.abort(new Error("replaced"));
  await assert.rejects(waiting, /replaced/);
});

// ---- the refresher: deadlines and the device's clock ---------------------------------------

test("a background refresh keeps trying until shortly before the token in hand expires", async () => {
  const clock = fakeTime();
  const held = clock.now + 85_000;
  const waits = [];
  const refresh = createRefresher({
    obtain: service(busy(503, 20), busy(503, 20), busy(503, 20), issued(clock.now)).obtain,
    tokenInHandExpiresAt: () => held,
    now: clock.read,
    wait: async (ms) => {
      waits.push(ms);
      await clock.wait(ms);
    },
    random: () => 0,
  });
  // 85 s left, 30 s margin: two waits of 20 s fit, the third would end after the margin.
  await assert.rejects(refresh({ background: true }), (error) => error.gaveUp === true);
  assert.deepEqual(waits, [20_000, 20_000]);
  assert.ok(clock.now <= held - EXPIRY_MARGIN_MS);
});

test("a person's own request waits at most two minutes", async () => {
  const clock = fakeTime();
  const refresh = createRefresher({
    obtain: service(busy(429, 50)).obtain,
    tokenInHandExpiresAt: () => clock.now + 50 * MINUTE,
    now: clock.read,
    wait: clock.wait,
    random: () => 0,
  });
  await assert.rejects(refresh({ background: false }), (error) => error.gaveUp === true);
  assert.ok(clock.now - Date.parse("2026-05-01T12:00:00Z") <= FOREGROUND_WAIT_MS);
  assert.deepEqual(clock.waits, [50_000, 50_000]);
});

test("the expiry is read against the service's clock, so a device an hour fast still sees a 60-minute token", () => {
  const receivedAt = Date.parse("2026-05-01T13:00:00Z"); // the device says 13:00
  const serverTime = Date.parse("2026-05-01T12:00:00Z"); // the service says 12:00
  const expiresOn = "2026-05-01T13:00:00Z"; // a 60-minute token
  assert.equal(localExpiresOn({ expiresOn, serverTime, receivedAt }), receivedAt + 60 * MINUTE - 1000);
  assert.equal(localExpiresOn({ expiresOn }), Date.parse(expiresOn), "without a Date header: as the service says");
});

test("the refresher hands the credential an explicit expiry by the device's clock", async () => {
  const clock = fakeTime();
  const answer = { ...issued(clock.now - 3_600_000), serverTime: clock.now - 3_600_000, receivedAt: clock.now };
  const refresh = createRefresher({ obtain: async () => answer, tokenInHandExpiresAt: () => 0, now: clock.read });
  const result = await refresh();
  assert.equal(result.expiresOnTimestamp, clock.now + 60 * MINUTE - 1000);
});

// ---- with the real credential ------------------------------------------------------------------

test("the credential never sees a passing failure: getToken gets the token after a 503 and a 429", async () => {
  const answers = service(busy(503, 1), busy(429, 1), issued(Date.now(), 60, "after-retries"));
  const waits = [];
  const refresh = createRefresher({
    obtain: answers.obtain,
    tokenInHandExpiresAt: () => 0,
    wait: async (ms) => waits.push(ms),
  });
  const credential = new AzureCommunicationTokenCredential({
    tokenRefresher: async () => {
      const result = await refresh({ background: true });
      return { token: result.token, expiresOnTimestamp: result.expiresOnTimestamp };
    },
    refreshProactively: false,
  });
  const token = await credential.getToken();
  credential.dispose();
  assert.match(token.token, /^ey/);
  assert.equal(JSON.parse(Buffer.from(token.token.split(".")[1], "base64url")).name, "after-retries");
  assert.ok(token.expiresOnTimestamp > Date.now() + 59 * MINUTE);
  assert.equal(answers.count, 3);
  assert.equal(waits.length, 2);
  assert.ok(waits.every((ms) => ms >= 1000 && ms <= 1200), `${waits}`);
});

test("a 401 reaches the credential's caller as a sign-in error after one request", async () => {
  const answers = service(signInEnded());
  const refresh = createRefresher({ obtain: answers.obtain, tokenInHandExpiresAt: () => 0, wait: async () => {} });
  const credential = new AzureCommunicationTokenCredential({ tokenRefresher: () => refresh({ background: true }) });
  await assert.rejects(credential.getToken(), (error) => error.signInRequired === true);
  credential.dispose();
  assert.equal(answers.count, 1);
});
