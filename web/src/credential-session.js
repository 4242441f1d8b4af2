// One AzureCommunicationTokenCredential at a time, as a chat or calling client would hold it, fed
// by token-refresher.js: the first token on a person's request, the next ones from the
// credential's own proactive refresh. Both pages (member and guest) use it, so both ride out
// passing failures the same way and say on the page what is happening.

import { AzureCommunicationTokenCredential } from "@azure/communication-common";
import { createRefresher } from "./token-refresher.js";

/**
 * @param {{
 *   page: ReturnType<import("./page-view.js").createView>,
 *   obtain: (how: {background: boolean}) => Promise<any>,
 *   show: (issued: any) => void,
 *   renewedText: (issued: any) => string,
 *   isBusy: () => boolean,
 * }} options  obtain: one call to the token service; show: put an issued token's facts on the page
 */
export function createCredentialSession({ page, obtain, show, renewedText, isBusy }) {
  /** @type {AzureCommunicationTokenCredential | null} */
  let credential = null;
  /** @type {AbortController | null} */
  let stopRefresh = null;

  function refresher(background) {
    return createRefresher({
      obtain: () => obtain({ background }),
      tokenInHandExpiresAt: page.expiresAt,
      onRetry: page.showRetrying,
    });
  }

  /** A 401: the sign-in has ended, so the person goes to sign in again. */
  function sendToSignIn(error) {
    if (!error?.signInRequired) {
      return false;
    }
    page.showError(error);
    error.shownToPerson = true;
    window.location.assign("/signin.html");
    return true;
  }

  /**
   * The credential's tokenRefresher. It runs on the credential's timer, so it reports to the page
   * itself. `stop` aborts when the page drops that credential, so a refresh still waiting out a
   * failure neither waits on nor shows a token nobody holds any more.
   */
  async function backgroundRefresh(stop, callerSignal) {
    const held = page.expiresAt();
    // A calling or chat client may pass its own abort signal to getToken; either one ends the wait.
    const signal = callerSignal && typeof AbortSignal.any === "function" ? AbortSignal.any([stop, callerSignal]) : stop;
    try {
      const issued = await refresher(true)({ background: true, signal });
      if (stop.aborted) {
        throw stop.reason;
      }
      show(issued);
      if (!isBusy()) {
        page.clearError();
        page.showStatus(renewedText(issued));
      }
      return { token: issued.token, expiresOnTimestamp: issued.expiresOnTimestamp };
    } catch (error) {
      if (stop.aborted) {
        throw Object.assign(new Error("This credential was replaced."), { shownToPerson: true });
      }
      if (!sendToSignIn(error)) {
        const expiry = page.view.expiresOn.textContent;
        page.showError(
          error,
          held > Date.now()
            ? `Your token could not be renewed; the one you have works until ${expiry}. Get a new token to try again.`
            : "Your token could not be renewed. Get a new token to try again.",
        );
        error.shownToPerson = true;
      }
      throw error;
    }
  }

  function drop() {
    credential?.dispose();
    stopRefresh?.abort(new Error("This credential was replaced."));
    credential = null;
    stopRefresh = null;
  }

  /** Gets a token (retrying passing failures) and hands it to a new credential that keeps it fresh. */
  async function start() {
    let first;
    try {
      first = await refresher(false)({ background: false });
    } catch (error) {
      sendToSignIn(error);
      throw error;
    }
    show(first);
    drop();
    const stop = new AbortController();
    stopRefresh = stop;
    credential = new AzureCommunicationTokenCredential({
      tokenRefresher: (callerSignal) => backgroundRefresh(stop.signal, callerSignal),
      token: { token: first.token, expiresOnTimestamp: first.expiresOnTimestamp },
      refreshProactively: true,
    });
    // What a chat or calling client would do; it answers from the credential without a new call.
    await credential.getToken();
    return first;
  }

  return { start, drop, credential: () => credential };
}
