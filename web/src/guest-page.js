// The Teams meeting guest page: a person who is not an app user types their name and gets a guest
// token (voip.join only, at most 60 minutes) through the same AzureCommunicationTokenCredential a
// calling page would hold. Joining the meeting is the Calling SDK's work in that calling page;
// this page shows what the token allows and for how long.

import { createActionRunner } from "./action-runner.js";
import { createCredentialSession } from "./credential-session.js";
import { MAX_DISPLAY_NAME_CHARS, displayNameProblem, trimSpaces } from "./display-name.js";
import { createView } from "./page-view.js";
import { issueGuestToken } from "./token-service.js";

/** What a guest token grants when the answer does not say (the service's guest policy). */
const GUEST_SCOPES = ["voip.join"];

export function startGuestPage() {
  const $ = (id) => document.getElementById(id);
  const page = createView();
  const { showStatus, showError, showToken } = page;
  const view = {
    ...page.view,
    form: $("guest-form"),
    name: $("display-name"),
    submit: $("get-guest-token"),
    shownName: $("guest-name"),
    main: $("main"),
  };
  const state = { /** the name the person typed, trimmed */ name: "" };
  const actions = createActionRunner(page, { region: view.main, buttons: [view.submit] });

  function show(issued) {
    showToken(issued, Array.isArray(issued.scopes) ? issued.scopes : GUEST_SCOPES);
    view.shownName.textContent = typeof issued.displayName === "string" ? issued.displayName : state.name;
  }

  // Every guest token is for a new guest identity: a guest is nobody the service can remember, so
  // a renewal (the credential's, shortly before the token runs out) gets a new one with the same name.
  const session = createCredentialSession({
    page,
    obtain: () => issueGuestToken(state.name),
    show,
    renewedText: () =>
      `Your guest token was renewed (for a new guest identity). It expires at ${view.expiresOn.textContent}.`,
    isBusy: actions.isBusy,
  });

  function readName() {
    view.name.removeAttribute("aria-invalid");
    const problem = displayNameProblem(view.name.value);
    if (problem) {
      view.name.setAttribute("aria-invalid", "true");
      view.name.focus();
      throw new Error(
        `Your name ${problem}. Use 1 to ${MAX_DISPLAY_NAME_CHARS} letters, digits, spaces and common punctuation.`,
      );
    }
    return trimSpaces(view.name.value);
  }

  async function getGuestToken() {
    state.name = readName();
    try {
      await session.start();
    } catch (error) {
      if (error?.code === "InvalidDisplayName") {
        view.name.setAttribute("aria-invalid", "true");
        view.name.focus();
      }
      throw error;
    }
    showStatus(
      `Guest token issued for “${view.shownName.textContent}”. It lets a calling page join calls and Teams meetings ` +
        `(${view.scopes.textContent}) until ${view.expiresOn.textContent}.`,
    );
  }

  view.form.addEventListener("submit", (event) => {
    event.preventDefault();
    actions.run("Getting a guest token…", getGuestToken);
  });
  window.addEventListener("pagehide", () => session.drop());

  return { showError };
}
