// The signed-in member's token page: signs the person in (through the platform), gets their token
// through AzureCommunicationTokenCredential exactly as a chat or calling client would, and lets
// them refresh, revoke and delete. Outcomes and errors are written to the page for the person;
// nothing is logged to the console, and the token itself is never put on the page.

import { createActionRunner } from "./action-runner.js";
import { createCredentialSession } from "./credential-session.js";
import { createView } from "./page-view.js";
import { grantedScopes } from "./token-details.js";
import { deleteIdentity, getIdentity, getSignedInUser, issueToken, revokeTokens } from "./token-service.js";

const MIN_LIFETIME = 60;
const MAX_LIFETIME = 1440;

export function startMemberPage() {
  const $ = (id) => document.getElementById(id);
  const page = createView();
  const { showStatus, showError, showToken, showNoToken } = page;
  const view = {
    ...page.view,
    signedIn: $("signed-in"),
    userName: $("user-name"),
    userProvider: $("user-provider"),
    form: $("token-form"),
    lifetime: $("lifetime"),
    refresh: $("refresh"),
    revoke: $("revoke"),
    remove: $("delete"),
    main: $("main"),
  };

  /** What the page knows; the token string itself lives only inside the credential. */
  const state = {
    /** The scopes and lifetime the person last asked for; proactive refreshes ask for the same.
     * Until they choose, no scopes are sent: the service's defaults apply (voip only unless the
     * deployment allows chat), so opening the page never asks for a scope the service refuses. */
    request: { expiresInMinutes: MIN_LIFETIME },
    /** Whether the next token must be newly issued (a person's click) or may be one issued moments ago. */
    fresh: true,
  };
  const actions = createActionRunner(page, { region: view.main, buttons: [view.refresh, view.revoke, view.remove] });

  // A person's own click asks for a newly issued token; opening the page and the credential's
  // background refreshes accept one the service issued moments ago (e.g. for another tab of the
  // same user), so a storm of reloads costs ACS nothing extra.
  const session = createCredentialSession({
    page,
    obtain: ({ background }) => issueToken(state.request, { fresh: !background && state.fresh }),
    show: (issued) => {
      showToken(issued, state.request.scopes);
      if (!state.request.scopes) {
        tickScopes(grantedScopes(issued.token, []).scopes);
      }
    },
    renewedText: () => `Your token was renewed. It expires at ${view.expiresOn.textContent}.`,
    isBusy: actions.isBusy,
  });

  // ---- actions ------------------------------------------------------------------------------

  /** Ticks the boxes of the scopes a token granted, so the next request asks for the same. */
  function tickScopes(scopes) {
    if (scopes.length === 0) {
      return;
    }
    for (const box of view.form.querySelectorAll('input[name="scope"]')) {
      box.checked = scopes.includes(box.value);
    }
  }

  function readRequest() {
    const scopes = [...view.form.querySelectorAll('input[name="scope"]:checked')].map((box) => box.value);
    const lifetime = Number(view.lifetime.value);
    view.lifetime.removeAttribute("aria-invalid");
    if (scopes.length === 0) {
      view.form.querySelector('input[name="scope"]').focus();
      throw new Error("Choose at least one scope.");
    }
    if (!Number.isInteger(lifetime) || lifetime < MIN_LIFETIME || lifetime > MAX_LIFETIME) {
      view.lifetime.setAttribute("aria-invalid", "true");
      view.lifetime.focus();
      throw new Error(`The lifetime must be a whole number of minutes from ${MIN_LIFETIME} to ${MAX_LIFETIME}.`);
    }
    return { scopes, expiresInMinutes: lifetime };
  }

  async function getNewToken({ fresh = true, request = readRequest() } = {}) {
    state.request = request;
    state.fresh = fresh;
    await session.start();
    showStatus(`New token issued. It expires at ${view.expiresOn.textContent}.`);
  }

  async function revoke() {
    await revokeTokens();
    session.drop();
    showNoToken("None (all tokens revoked)");
    // ACS promises no immediate stop: a revocation "can take up to 15 minutes to propagate"
    // (learn.microsoft.com/azure/communication-services/concepts/identity-model). Deleting the
    // identity revokes its tokens too and leaves nothing to issue new ones for; ACS states no
    // propagation time for that either, so the page promises no instant stop.
    showStatus(
      "All tokens issued to your identity so far were revoked. Communication Services may keep accepting them " +
        "for up to 15 minutes. Deleting your identity also ends them, and no new token can be issued for it. " +
        "Get a new token to continue.",
    );
  }

  async function removeIdentity() {
    if (!window.confirm("Delete your communication identity? Every token issued to it stops working.")) {
      showStatus("Nothing was deleted.");
      return;
    }
    await deleteIdentity();
    session.drop();
    const identity = await getIdentity();
    if (identity) {
      throw new Error("The identity is still there. Try deleting it again.");
    }
    view.userId.textContent = "None (deleted)";
    showNoToken("None");
    showStatus("Your communication identity was deleted. Getting a new token creates a new identity.");
  }

  async function start() {
    const user = await getSignedInUser();
    if (!user) {
      window.location.replace("/signin.html");
      return;
    }
    view.userName.textContent = user.userDetails;
    view.userProvider.textContent = `(${user.identityProvider})`;
    view.signedIn.hidden = false;
    // Opening (or reloading) the page may take a token the service issued moments ago: a storm
    // of reloads then costs ACS nothing extra. The button asks for a newly issued one.
    // The first token names no scopes, so the deployment's defaults apply (voip only unless it
    // allows chat) and opening the page never asks for a scope the service refuses; the boxes
    // then show what was granted.
    await getNewToken({ fresh: false, request: { expiresInMinutes: MIN_LIFETIME } });
  }

  // ---- wiring -------------------------------------------------------------------------------

  view.form.addEventListener("submit", (event) => {
    event.preventDefault();
    actions.run("Getting a new token…", () => getNewToken());
  });
  view.revoke.addEventListener("click", () => actions.run("Revoking your tokens…", revoke));
  view.remove.addEventListener("click", () => actions.run("Deleting your identity…", removeIdentity));
  view.signedIn.querySelector("#sign-out").addEventListener("click", () => session.drop());

  actions.run("Loading…", start);
  return { showError };
}
