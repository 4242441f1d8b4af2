// What both pages show the same way: the status and alert regions, the token facts with their
// countdown, and the words for a refresh that is waiting out a failure. Nothing here writes to the
// console, and the token itself never reaches the page.

import { describeRemaining } from "./countdown.js";
import { grantedScopes, tokenId } from "./token-details.js";
import { TokenServiceError } from "./token-service.js";

const $ = (id) => document.getElementById(id);

/** Brings a message into view: the buttons sit below it, so after a click it may be off screen. */
function reveal(element) {
  element.scrollIntoView({ block: "nearest" });
}

/** Why a retry is needed, in words (the error's own message may say "try again in N seconds"). */
export function describeHold(error) {
  if (error?.status === 429) {
    return "the token service is pacing requests";
  }
  if (error?.status === 503) {
    return "the token service is briefly unavailable";
  }
  if (!error?.status) {
    return "the token service could not be reached";
  }
  return `the token service answered with an error (HTTP ${error.status})`;
}

/** "in 7 s", "in 1 min 05 s" */
export function describeWait(milliseconds) {
  const seconds = Math.max(1, Math.round(milliseconds / 1000));
  return seconds < 60 ? `in ${seconds} s` : `in ${describeRemaining(seconds * 1000)}`;
}

export function createView() {
  const view = {
    error: $("error"),
    status: $("status"),
    userId: $("communication-user-id"),
    scopes: $("scopes"),
    tokenId: $("token-id"),
    expiresOn: $("expires-on"),
    expiresIn: $("expires-in"),
  };
  /** When the token the page shows runs out, by this device's clock (0: no token). */
  let expiresAt = 0;

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

  /** Puts an error in the alert region: the service's sentence, what it means, what to do. */
  function showError(error, extra) {
    const message =
      error instanceof TokenServiceError || error instanceof Error ? error.message : "Something went wrong. Try again.";
    const lines = [message, error?.explanation, extra].filter(Boolean);
    view.error.replaceChildren(
      ...lines.map((line) => {
        const paragraph = document.createElement("p");
        paragraph.textContent = line;
        return paragraph;
      }),
    );
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
    view.expiresIn.textContent = expiresAt ? `(${describeRemaining(expiresAt - Date.now())} left)` : "";
  }

  /** Shows an issued token's facts (refresher.js adds expiresOnTimestamp, by this device's clock). */
  function showToken(issued, requestedScopes) {
    const granted = grantedScopes(issued.token, requestedScopes);
    const expires = new Date(issued.expiresOn);
    view.userId.textContent = issued.communicationUserId;
    view.scopes.textContent = granted.scopes.join(", ") + (granted.source === "requested" ? " (as requested)" : "");
    view.tokenId.textContent = tokenId(issued.token);
    view.expiresOn.dateTime = expires.toISOString();
    view.expiresOn.textContent = expires.toLocaleString();
    expiresAt = issued.expiresOnTimestamp ?? expires.getTime();
    showExpiry();
  }

  function showNoToken(reason) {
    view.scopes.textContent = "None";
    view.tokenId.textContent = reason;
    view.expiresOn.removeAttribute("datetime");
    view.expiresOn.textContent = "No token";
    expiresAt = 0;
    showExpiry();
  }

  /** What the page says while a refresh waits out a failure, instead of failing. */
  function showRetrying({ error, delayMs, background, tokenInHandExpiresAt }) {
    const what = background ? "Renewing your token" : "Getting a token";
    let text = `${what}: ${describeHold(error)}. Trying again ${describeWait(delayMs)}.`;
    if (background && tokenInHandExpiresAt > Date.now()) {
      text += ` The token you have keeps working until ${view.expiresOn.textContent}.`;
    }
    showStatus(text);
  }

  setInterval(showExpiry, 1000);
  return { view, showStatus, clearError, showError, showToken, showNoToken, showRetrying, expiresAt: () => expiresAt };
}
