// What the member, guest and refresher browser scripts share: Debian's Chromium started offline
// through playwright-core, the ACS emulator's control surface, console capture of the app's own
// pages, screenshots, and the one JSON line of results each script prints (never a token).
//
// The SWA CLI's sign-in page loads jQuery from a public CDN that cannot be reached here: requests
// for it are answered from the repository's npm copy of jquery (request routing); every other
// request off this machine is blocked, so the browser never waits on the network.

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
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
export const STEP_TIMEOUT_MS = 30_000;

/**
 * Command line: --stack FILE (the stack's description), --site URL (default: the stack's SWA CLI),
 * --artifacts DIR, --scenario NAME (which part of a script to run, where it has several).
 */
export function readOptions() {
  const { values } = parseArgs({
    options: {
      stack: { type: "string", default: join(repoRoot, "local.stack.json") },
      site: { type: "string" },
      artifacts: { type: "string", default: join(repoRoot, "test-artifacts", "e2e") },
      scenario: { type: "string", default: "default" },
    },
  });
  const stack = JSON.parse(readFileSync(values.stack, "utf8"));
  mkdirSync(values.artifacts, { recursive: true });
  return { stack, site: new URL(values.site ?? stack.staticWebApp), artifacts: values.artifacts, scenario: values.scenario };
}

/** The ACS emulator's control surface over https, trusting the stack's local CA. */
export function emulatorClient(stack) {
  const ca = readFileSync(stack.caCertFile);
  function call(method, path, body) {
    const url = new URL(path, stack.acsEndpoint);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolvePromise, reject) => {
      const req = httpsRequest(
        url,
        { method, ca, headers: payload ? { "Content-Type": "application/json", "Content-Length": payload.length } : {} },
        (res) => {
          const chunks = [];
          res.on("data", (chunk) => chunks.push(chunk));
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            if (res.statusCode >= 300) {
              reject(new Error(`emulator ${method} ${path} answered ${res.statusCode}`));
              return;
            }
            resolvePromise(text ? JSON.parse(text) : undefined);
          });
        },
      );
      req.on("error", reject);
      req.end(payload);
    });
  }
  return {
    verify: (token) => call("POST", "/_emulator/tokens:verify", { token }),
    identities: async () => (await call("GET", "/_emulator/identities")).identities,
    addFault: (fault) => call("POST", "/_emulator/faults", fault),
    faults: async () => (await call("GET", "/_emulator/faults")).faults,
    clearFaults: () => call("DELETE", "/_emulator/faults"),
    /** Issues ACS answered with a token (calls less those an injected fault or a 429 refused). */
    issued: async () => {
      const stats = await call("GET", "/_emulator/stats");
      const op = "issueAccessToken";
      return (stats.calls[op] ?? 0) - (stats.faulted?.[op] ?? 0) - (stats.throttled?.[op] ?? 0);
    },
  };
}

/**
 * Runs `scenario(context, kit)` in a fresh offline Chromium profile and prints one JSON line of
 * results. `kit.step(name, detail)` records a behaviour seen; `kit.tokens` collects every token
 * the service handed out so none may appear in the console or the report; `kit.appConsole` is what
 * the app's own pages have written to the console so far (reported as is).
 */
export async function runInBrowser(options, scenario) {
  const results = { steps: [], screenshots: [], appConsole: [], blockedOffMachine: [] };
  const tokens = [];
  const allConsole = [];
  const blocked = new Set();
  const isAppPage = (url) => {
    try {
      const parsed = new URL(url);
      return parsed.origin === options.site.origin && !parsed.pathname.startsWith("/.auth/");
    } catch {
      return false;
    }
  };
  const kit = {
    tokens,
    appConsole: results.appConsole,
    step: (name, detail = {}) => results.steps.push({ name, ...detail }),
    screenshot: async (page, name) => {
      const file = join(options.artifacts, `${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      results.screenshots.push(file);
    },
    /** Console notes Chromium writes for an HTTP error answer the scenario expects (e.g. a 503 it injected). */
    expectedNetworkNotes: [],
    watch(page) {
      page.on("console", (message) => {
        allConsole.push(message.text());
        const where = message.location().url || page.url();
        const expected = kit.expectedNetworkNotes.some(
          (note) =>
            message.text().startsWith(`Failed to load resource: the server responded with a status of ${note.status}`) &&
            isAppPage(where) &&
            new URL(where).pathname === note.path,
        );
        if (isAppPage(where) && !expected) {
          results.appConsole.push(`${message.type()}: ${message.text()} (${where})`);
        }
      });
      page.on("pageerror", (error) => {
        if (isAppPage(page.url())) {
          results.appConsole.push(`pageerror: ${error.message}`);
        }
      });
      return page;
    },
  };

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
    await routeOffMachineRequests(context, blocked);
    try {
      await scenario(context, kit);
      assert.ok(!allConsole.some((text) => tokens.some((token) => text.includes(token))), "no token is ever written to the console");
    } catch (error) {
      for (const [index, page] of context.pages().entries()) {
        await kit.screenshot(page, `failure-${index}`).catch(() => {});
      }
      throw error;
    }
    results.ok = true;
  } catch (error) {
    results.ok = false;
    results.error = String(error?.stack ?? error);
  } finally {
    await context?.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
  results.blockedOffMachine = [...blocked].sort();
  let line = JSON.stringify(results);
  for (const token of tokens) {
    line = line.replaceAll(token, "<token>");
  }
  console.log(line);
  process.exitCode = results.ok ? 0 : 1;
}

async function routeOffMachineRequests(context, blocked) {
  let jquery;
  try {
    jquery = readFileSync(require.resolve("jquery/dist/jquery.min.js"));
  } catch {
    throw new Error("jquery is not installed: add the pinned jquery devDependency and run npm ci");
  }
  await context.route(
    (url) => !["127.0.0.1", "localhost", "[::1]"].includes(url.hostname),
    async (route) => {
      const url = new URL(route.request().url());
      if (/\/jquery-\d+\.\d+\.\d+(\.min)?\.js$/.test(url.pathname)) {
        // The page loads it with crossorigin="anonymous", so the answer must allow CORS.
        await route.fulfill({
          status: 200,
          contentType: "application/javascript",
          headers: { "Access-Control-Allow-Origin": "*" },
          body: jquery,
        });
        return;
      }
      blocked.add(url.origin);
      await route.abort("blockedbyclient");
    },
  );
}

export async function textOf(page, selector) {
  return (await page.locator(selector).textContent())?.trim() ?? "";
}

/**
 * Records, inside the page, every text the status region shows and whether the alert region was
 * ever shown, so a check afterwards sees what the person saw along the way, not only the end.
 */
export async function recordMessages(page) {
  await page.evaluate(() => {
    const status = document.getElementById("status");
    const error = document.getElementById("error");
    window.__seen = { statuses: [], errors: [] };
    new MutationObserver(() => {
      const text = status.textContent.trim();
      if (text && window.__seen.statuses.at(-1) !== text) {
        window.__seen.statuses.push(text);
      }
    }).observe(status, { childList: true, characterData: true, subtree: true });
    new MutationObserver(() => {
      if (!error.hidden) {
        window.__seen.errors.push(error.textContent.trim());
      }
    }).observe(error, { attributes: true, childList: true, characterData: true, subtree: true });
  });
}

export async function messagesSeen(page) {
  return page.evaluate(() => window.__seen);
}
