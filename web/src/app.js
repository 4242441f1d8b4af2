// The token page: signs the person in (through the platform), gets their token through
// AzureCommunicationTokenCredential exactly as a chat or calling client would, and lets them
// refresh, revoke and delete. Outcomes and errors are written to the page for the person; nothing
// is logged to the console, and the token itself is never put on the page.

import { AzureCommunicationTokenCredential } from "@azure/communication-common";
import { describeRemaining } from "./countdown.js";
import { grantedScopes, tokenId } from "./token-details.js";
import {
  TokenServiceError,
  deleteIdentity,
  getIdentity,
  getSignedInUser,
  issueToken,
  revokeTokens,
} from "./token-service.js";

const MIN_LIFETIME = 60;
const MAX_LIFETIME = 1440;

const $ = (id) => document.getElementById(id);

const view = {
  signedIn: $("signed-in"),
  userName: $("user-name"),
  userProvider: $("user-provider"),
  error: $("error"),
  status: $("status"),
  userId: $("communication-user-id"),
  scopes: $("scopes"),
  tokenId: $("token-id"),
  expiresOn: $("expires-on"),
  expiresIn: $("expires-in"),
  form: $("token-form"),
  lifetime: $("lifetime"),
  refresh: $("refresh"),
  revoke: $("revoke"),
  remove: $("delete"),
  main: $("main"),
};

/** What the page knows; the token string itself lives only inside the credential. */
const state = {
  /** @type {AzureCommunicationTokenCredential | null} */
  credential: null,
  /** The scopes and lifetime the person last asked for; proactive refreshes ask for the same. */
  request: { scopes: ["chat", "voip"], expiresInMinutes: MIN_LIFETIME },
  expiresOnTimestamp: 0,
  busy: false,
  /** Whether the next token request must be newly issued (set for the person's own actions). */
  freshNext: false,
};

// ---- showing things -------------------------------------------------------------------------

/** Brings a message into view: the buttons sit below it, so after a click it may be off screen. */
function reveal(element) {
  element.scrollIntoView({ block: "nearest" });
}

function showStatus(text) {
  view.status.textContent = text;
  if (text) {
    reveal(view.status);
  }
}

function clearError() {
  view.error.replaceChildren();
  view.error.hidden = true;
}

/** Puts an error in the page's alert region; errors are already sentences meant for people. */
function showError(error) {
  const message =
    error instanceof TokenServiceError || error instanceof Error
      ? error.message
      : "Something went wrong. Try again.";
  const text = document.createElement("p");
  text.textContent = message;
  view.error.replaceChildren(text);
  if (error instanceof TokenServiceError && error.signInRequired) {
    const link = document.createElement("a");
    link.href = "/signin.html";
    link.textContent = "Sign in again";
    view.error.append(link);
  }
  view.error.hidden = false;
  showStatus("");
  reveal(view.error);
}

function showExpiry() {
  if (!state.expiresOnTimestamp) {
    view.expiresIn.textContent = "";
    return;
  }
  view.expiresIn.textContent = `(${describeRemaining(state.expiresOnTimestamp - Date.now())} left)`;
}

function showToken(issued, scopes) {
  const granted = grantedScopes(issued.token, scopes);
  const expires = new Date(issued.expiresOn);
  view.userId.textContent = issued.communicationUserId;
  view.scopes.textContent =
    granted.scopes.join(", ") + (granted.source === "requested" ? " (as requested)" : "");
  view.tokenId.textContent = tokenId(issued.token);
  view.expiresOn.dateTime = expires.toISOString();
  view.expiresOn.textContent = expires.toLocaleString();
  state.expiresOnTimestamp = expires.getTime();
  showExpiry();
}

function showNoToken(reason) {
  view.scopes.textContent = "None";
  view.tokenId.textContent = reason;
  view.expiresOn.removeAttribute("datetime");
  view.expiresOn.textContent = "No token";
  state.expiresOnTimestamp = 0;
  showExpiry();
}

// ---- the credential -------------------------------------------------------------------------

/**
 * The credential's tokenRefresher: every token the page holds, first or proactive refresh, comes
 * from here, so the page always shows the token the credential really has.
 */
async function tokenRefresher() {
  const request = state.request;
  // A person's own click asks for a newly issued token; the credential's background refreshes
  // accept one the service issued moments ago (e.g. for another tab of the same user).
  const fresh = state.freshNext;
  state.freshNext = false;
  try {
    const issued = await issueToken(request, { fresh });
    showToken(issued, request.scopes);
    return { token: issued.token, expiresOnTimestamp: Date.parse(issued.expiresOn) };
  } catch (error) {
    showError(error);
    error.shownToPerson = true;
    throw error;
  }
}

function dropCredential() {
  state.credential?.dispose();
  state.credential = null;
}

/** Gets a fresh token and hands it to a new credential that keeps it fresh from then on. */
async function startCredential({ fresh }) {
  state.freshNext = fresh;
  const first = await tokenRefresher();
  dropCredential();
  state.credential = new AzureCommunicationTokenCredential({
    tokenRefresher,
    token: first,
    refreshProactively: true,
  });
  // What a chat or calling client would do; it answers from the credential without a new call.
  await state.credential.getToken();
}

// ---- actions --------------------------------------------------------------------------------

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

/**
 * Runs one action at a time. Buttons are marked aria-disabled rather than disabled while busy, so
 * keyboard focus stays where the person left it.
 */
async function runAction(working, action) {
  if (state.busy) {
    return;
  }
  state.busy = true;
  view.main.setAttribute("aria-busy", "true");
  for (const button of [view.refresh, view.revoke, view.remove]) {
    button.setAttribute("aria-disabled", "true");
  }
  clearError();
  showStatus(working);
  try {
    await action();
  } catch (error) {
    if (!error?.shownToPerson) {
      showError(error);
    }
  } finally {
    state.busy = false;
    view.main.removeAttribute("aria-busy");
    for (const button of [view.refresh, view.revoke, view.remove]) {
      button.removeAttribute("aria-disabled");
    }
  }
}

async function getNewToken({ fresh = true } = {}) {
  state.request = readRequest();
  await startCredential({ fresh });
  showStatus(`New token issued. It expires at ${view.expiresOn.textContent}.`);
}

async function revoke() {
  await revokeTokens();
  dropCredential();
  showNoToken("None (all tokens revoked)");
  // ACS promises no immediate stop: a revocation "can take up to 15 minutes to propagate"
  // (learn.microsoft.com/azure/communication-services/concepts/identity-model). Deleting the
  // identity is what stops its tokens at once.
  showStatus(
    "All tokens issued to your identity so far were revoked. Communication Services may keep accepting them " +
      "for up to 15 minutes; deleting your identity stops them at once. Get a new token to continue.",
  );
}

async function removeIdentity() {
  if (!window.confirm("Delete your communication identity? Every token issued to it stops working.")) {
    showStatus("Nothing was deleted.");
    return;
  }
  await deleteIdentity();
  dropCredential();
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
  // Opening (or reloading) the page may take a token the service issued moments ago: a storm of
  // reloads then costs ACS nothing extra. The button asks for a newly issued one.
  await getNewToken({ fresh: false });
}

// ---- wiring ---------------------------------------------------------------------------------

view.form.addEventListener("submit", (event) => {
  event.preventDefault();
  runAction("Getting a new token…", () => getNewToken());
});
view.revoke.addEventListener("click", () => runAction("Revoking your tokens…", revoke));
view.remove.addEventListener("click", () => runAction("Deleting your identity…", removeIdentity));
view.signedIn.querySelector("#sign-out").addEventListener("click", dropCredential);

// A proactive refresh runs on the credential's own timer; if it fails, the refresher has already
// told the person, so the browser need not report it again.
window.addEventListener("unhandledrejection", (event) => {
  if (!event.reason?.shownToPerson) {
    showError(event.reason);
  }
  event.preventDefault();
});

setInterval(showExpiry, 1000);
runAction("Loading…", start);
