// One action at a time on both pages, checked without a browser: `node --test web/test/`.
// The page's elements are stand-ins holding attributes (no DOM in Node); the runner only sets and
// removes attributes on them.

import assert from "node:assert/strict";
import { test } from "node:test";
import { createActionRunner } from "../src/action-runner.js";

function element() {
  const attributes = new Map();
  return {
    attributes,
    setAttribute: (name, value) => attributes.set(name, value),
    removeAttribute: (name) => attributes.delete(name),
  };
}

function page() {
  const said = { statuses: [], errors: [], cleared: 0 };
  return {
    said,
    clearError: () => said.cleared++,
    showStatus: (text) => said.statuses.push(text),
    showError: (error) => said.errors.push(error),
  };
}

function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

test("a second action while one runs is ignored, and the page is marked busy until the first ends", async () => {
  const shown = page();
  const main = element();
  const buttons = [element(), element()];
  const runner = createActionRunner(shown, { region: main, buttons });
  const first = deferred();
  let secondRan = false;

  const running = runner.run("Getting a new token…", () => first.promise);
  assert.equal(runner.isBusy(), true);
  assert.equal(main.attributes.get("aria-busy"), "true");
  assert.deepEqual(buttons.map((b) => b.attributes.get("aria-disabled")), ["true", "true"]);
  assert.deepEqual(shown.said.statuses, ["Getting a new token…"]);

  await runner.run("Revoking your tokens…", async () => {
    secondRan = true;
  });
  assert.equal(secondRan, false);
  assert.deepEqual(shown.said.statuses, ["Getting a new token…"]);

  first.resolve();
  await running;
  assert.equal(runner.isBusy(), false);
  assert.equal(main.attributes.has("aria-busy"), false);
  assert.deepEqual(buttons.map((b) => b.attributes.has("aria-disabled")), [false, false]);
  assert.deepEqual(shown.said.errors, []);

  await runner.run("Revoking your tokens…", async () => {
    secondRan = true;
  });
  assert.equal(secondRan, true);
});

test("an action's error is shown once and the page is free again", async () => {
  const shown = page();
  const main = element();
  const button = element();
  const runner = createActionRunner(shown, { region: main, buttons: [button] });
  const failure = new Error("The token service could not be reached.");

  await runner.run("Getting a guest token…", async () => {
    throw failure;
  });
  assert.deepEqual(shown.said.errors, [failure]);
  assert.equal(shown.said.cleared, 1);
  assert.equal(runner.isBusy(), false);
  assert.equal(main.attributes.has("aria-busy"), false);
  assert.equal(button.attributes.has("aria-disabled"), false);
});

test("an error already put in front of the person is not shown a second time", async () => {
  const shown = page();
  const runner = createActionRunner(shown, { region: element(), buttons: [] });
  await runner.run("Loading…", async () => {
    throw Object.assign(new Error("shown"), { shownToPerson: true });
  });
  assert.deepEqual(shown.said.errors, []);
  assert.equal(runner.isBusy(), false);
});
