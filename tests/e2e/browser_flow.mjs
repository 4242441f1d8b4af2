// End-to-end: a person in real headless Chromium uses the token page through the SWA CLI in front
// of the whole local stack (function host, ACS emulator, Tables). Every outcome is checked where
// it really happens: on the page, and at the ACS emulator, which says whether a token verifies.
//
//   node tests/e2e/browser_flow.mjs [--stack local.stack.json] [--artifacts test-artifacts/e2e]
//
// Prints one JSON line of results (never a token) and exits 0 when every check passed.
//
// The SWA CLI's sign-in page loads jQuery from a public CDN that cannot be reached here. This
// script serves that file from the repository's own npm copy of jquery (request routing), so the
// CLI's real sign-in page runs; every other request off this machine is blocked, so the browser
// never waits on the network.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const require = createRequire(import.meta.url);

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
// Without these Chromium tries to reach Google's services and stalls on a machine with no internet.
const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const STEP_TIMEOUT_MS = 30_000;

const { values: options } = parseArgs({
  options: {
    stack: { type: "string", default: join(repoRoot, "local.stack.json") },
    artifacts: { type: "string", default: join(repoRoot, "test-artifacts", "e2e") },
  },
});

const stack = JSON.parse(readFileSync(options.stack, "utf8"));
const site = new URL(stack.staticWebApp);
const acsCa = readFileSync(stack.caCertFile);
mkdirSync(options.artifacts, { recursive: true });

/** Results reported at the end: what was seen, never a token. */
const results = { steps: [], screenshots: [] };
/** Every token the service handed to the page, to prove none reaches the page text or console. */
const tokensSeen = [];
/** Console messages from the app's own pages (the CLI's sign-in page is not ours). */
const appConsole = [];
const blockedOffMachine = new Set();

function step(name, detail = {}) {
  results.steps.push({ name, ...detail });
}

/** POST JSON to the ACS emulator's control surface over https, trusting the stack's local CA. */
function emulator(method, path, body) {
  const url = new URL(path, stack.acsEndpoint);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolvePromise, reject) => {
    const req = httpsRequest(
      url,
      {
        method,
        ca: acsCa,
        headers: payload ? { "Content-Type": "application/json", "Content-Length": payload.length } : {},
      },
      (res) => {
        const chunks = [];
        res.on("data", (chunk) => chunks.push(chunk));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          if (res.statusCode !== 200) {
            reject(new Error(`emulator ${method} ${path} answered ${res.statusCode}`));
            return;
          }
          resolvePromise(JSON.parse(text));
        });
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

const verify = (token) => emulator("POST", "/_emulator/tokens:verify", { token });
const liveIdentities = async () => (await emulator("GET", "/_emulator/identities")).identities;

/** The local file for a jQuery URL the SWA CLI's sign-in page asks a CDN for. */
function localJquery() {
  try {
    return readFileSync(require.resolve("jquery/dist/jquery.min.js"));
  } catch {
    throw new Error("jquery is not installed: add the pinned jquery devDependency and run npm ci");
  }
}

async function routeOffMachineRequests(context) {
  const jquery = localJquery();
  await context.route(
    (url) => !["127.0.0.1", "localhost", "[::1]"].includes(url.hostname),
    async (route) => {
      const url = new URL(route.request().url());
      if (/\/jquery-\d+\.\d+\.\d+(\.min)?\.js$/.test(url.pathname)) {
        await route.fulfill({
          status: 200,
          contentType: "application/javascript",
          // The page loads it with crossorigin="anonymous", so the answer must allow CORS.
          headers: { "Access-Control-Allow-Origin": "*" },
          body: jquery,
        });
        return;
      }
      blockedOffMachine.add(url.origin);
      await route.abort("blockedbyclient");
    },
  );
}

function isAppPage(url) {
  try {
    const parsed = new URL(url);
    return parsed.origin === site.origin && !parsed.pathname.startsWith("/.auth/");
  } catch {
    return false;
  }
}

/**
 * Chromium itself notes every HTTP error answer in the console. After the identity is deleted,
 * GET /api/identity answering 404 is the expected outcome, not something the app logged.
 */
function isExpectedNetworkNote(message) {
  const where = message.location().url || "";
  return (
    message.text().startsWith("Failed to load resource: the server responded with a status of 404") &&
    isAppPage(where) &&
    new URL(where).pathname === "/api/identity"
  );
}

async function screenshot(page, name) {
  const file = join(options.artifacts, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  results.screenshots.push(file);
}

/** Runs `action` and returns the JSON body of the page's POST /api/token that it causes. */
async function tokenIssuedBy(page, action) {
  const response = page.waitForResponse(
    (r) => new URL(r.url()).pathname === "/api/token" && r.request().method() === "POST",
  );
  await action();
  const answer = await response;
  assert.equal(answer.status(), 200, `POST /api/token answered ${answer.status()}`);
  assert.match(answer.headers()["cache-control"] || "", /no-store/, "token responses must not be cached");
  const body = await answer.json();
  tokensSeen.push(body.token);
  return body;
}

async function textOf(page, selector) {
  return (await page.locator(selector).textContent())?.trim() ?? "";
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

async function run(page) {
  // 1. Not signed in: the page sends the visitor to sign in.
  await page.goto(new URL("/", site).href);
  await page.waitForURL((url) => url.pathname === "/signin.html");
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  step("unauthenticated visit is sent to sign-in", { landedOn: new URL(page.url()).pathname });

  // 2. Sign in on the SWA CLI's own sign-in page (its provider is taken from the URL).
  await page.getByRole("link", { name: "Sign in with Microsoft" }).click();
  await page.waitForURL((url) => url.pathname === "/.auth/login/aad");
  const userName = `e2e-${randomUUID().slice(0, 8)}@example.test`;
  // The CLI's page stores each field on keyup, so type the name rather than paste it.
  await page.locator("#userDetails").pressSequentially(userName);
  assert.equal(await page.locator("#identityProvider").inputValue(), "aad", "the CLI's page ran its script");
  const first = await tokenIssuedBy(page, () => page.getByRole("button", { name: "Login" }).click());
  await page.waitForURL((url) => url.pathname === "/");
  assert.equal(await textOf(page, "#user-name"), userName);
  assert.match(first.communicationUserId, /^8:acs:/);
  const firstExpiry = await assertPageShowsToken(page, first);
  assert.deepEqual(await shownScopes(page), ["chat", "voip"], "the page shows the granted scopes");
  const firstCheck = await verify(first.token);
  assert.equal(firstCheck.valid, true, `first token verifies (reason ${firstCheck.reason})`);
  assert.equal(firstCheck.communicationUserId, first.communicationUserId);
  step("signed in and shown an identity with a future expiry", {
    expiresInMinutes: Math.round((firstExpiry - Date.now()) / 60_000),
    scopes: await textOf(page, "#scopes"),
  });
  await screenshot(page, "signed-in");

  // 3. Refresh: a new token for the same identity, asking for calling only.
  await page.getByLabel("Chat (chat)").uncheck();
  const second = await tokenIssuedBy(page, () => page.getByRole("button", { name: "Get a new token" }).click());
  assert.notEqual(second.token, first.token, "refresh brings a new token");
  assert.equal(second.communicationUserId, first.communicationUserId, "refresh keeps the identity");
  await assertPageShowsToken(page, second);
  assert.deepEqual(await shownScopes(page), ["voip"], "the page shows the new scopes");
  const secondCheck = await verify(second.token);
  assert.equal(secondCheck.valid, true, `refreshed token verifies (reason ${secondCheck.reason})`);
  step("refresh gives a new token for the same identity", { scopes: await textOf(page, "#scopes") });

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
    const check = await verify(token);
    assert.equal(check.revoked, true, `${name} token is recorded revoked at ACS (reason ${check.reason})`);
  }
  assert.equal(await textOf(page, "#token-id"), "None (all tokens revoked)");
  step("tokens issued before revoking are revoked at ACS");

  // 5. A new token after revoking still belongs to the same identity, and works.
  const third = await tokenIssuedBy(page, () => page.getByRole("button", { name: "Get a new token" }).click());
  assert.equal(third.communicationUserId, first.communicationUserId);
  await assertPageShowsToken(page, third);
  const thirdCheck = await verify(third.token);
  assert.equal(thirdCheck.valid, true, `a token issued after revoke verifies (reason ${thirdCheck.reason})`);
  step("a token issued after revoking works");

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
  assert.ok(!(await liveIdentities()).includes(first.communicationUserId), "ACS no longer has the identity");
  // ACS's record: the identity the token names is deleted (deleting revokes its tokens; real
  // ACS may take up to 15 minutes to refuse them, so `valid` is not asserted).
  const thirdAfterDelete = await verify(third.token);
  assert.equal(thirdAfterDelete.reason, "deleted", "the token names an identity ACS deleted");
  step("deleted identity is gone and its token names a deleted identity");
  await screenshot(page, "identity-deleted");

  // 7. Sign out: the page is out of reach again.
  await page.getByRole("link", { name: "Sign out" }).click();
  await page.waitForURL((url) => url.pathname === "/signin.html");
  await page.goto(new URL("/", site).href);
  await page.waitForURL((url) => url.pathname === "/signin.html");
  step("signed out and sent to sign-in again");

  // Nothing went to the console on the app's pages, and no token ever did anywhere.
  assert.deepEqual(appConsole, [], "the app's pages write nothing to the console");
}

async function main() {
  const profile = mkdtempSync(join(tmpdir(), "e2e-chromium-"));
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport: { width: 1100, height: 900 },
    });
    context.setDefaultTimeout(STEP_TIMEOUT_MS);
    await routeOffMachineRequests(context);
    const page = context.pages()[0] ?? (await context.newPage());
    const allConsole = [];
    page.on("console", (message) => {
      allConsole.push(message.text());
      if (isAppPage(message.location().url || page.url()) && !isExpectedNetworkNote(message)) {
        appConsole.push(`${message.type()}: ${message.text()} (${message.location().url})`);
      }
    });
    page.on("pageerror", (error) => {
      if (isAppPage(page.url())) {
        appConsole.push(`pageerror: ${error.message}`);
      }
    });
    try {
      await run(page);
      assert.ok(
        !allConsole.some((text) => tokensSeen.some((token) => text.includes(token))),
        "no token is ever written to the console",
      );
    } catch (error) {
      await screenshot(page, "failure").catch(() => {});
      throw error;
    }
    results.ok = true;
  } catch (error) {
    results.ok = false;
    results.error = String(error?.message ?? error);
    for (const token of tokensSeen) {
      results.error = results.error.replaceAll(token, "<token>");
    }
  } finally {
    await context?.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
  results.blockedOffMachine = [...blockedOffMachine].sort();
  results.appConsole = appConsole;
  console.log(JSON.stringify(results));
  process.exitCode = results.ok ? 0 : 1;
}

await main();
