// Calls to the token service and to the Static Web Apps auth endpoints. Every failure becomes a
// TokenServiceError carrying a sentence a person can act on, so the page never has to show raw
// HTTP details and never needs the console.

import { explainCode } from "./explanations.js";

/** A failed call, with the service's own code and message when it sent one. */
export class TokenServiceError extends Error {
  /**
   * @param {string} message  sentence to show to the person
   * @param {{status?: number, code?: string, retryAfterSeconds?: number, signInRequired?: boolean,
   *   explanation?: string}} details  status 0: no answer arrived (network)
   */
  constructor(message, { status = 0, code = "Unknown", retryAfterSeconds, signInRequired = false, explanation } = {}) {
    super(message);
    this.name = "TokenServiceError";
    this.status = status;
    this.code = code;
    this.retryAfterSeconds = retryAfterSeconds;
    this.signInRequired = signInRequired;
    /** What the code means for the person and what they can do, when the page knows it. */
    this.explanation = explanation;
  }
}

const SIGN_IN_ENDED = "Your sign-in has ended. Sign in again to continue.";

/**
 * fetch() with the rules every call here shares: same-origin cookies (the platform's auth cookie
 * is what identifies the caller), no caching, and network failures turned into a readable error.
 */
async function call(method, path, body, { fresh = true } = {}) {
  // "no-store" also sends Cache-Control: no-cache, which tells the token service to issue a new
  // token rather than hand out one issued moments ago; a background refresh may take that one.
  const init = {
    method,
    credentials: "same-origin",
    cache: fresh ? "no-store" : "default",
    headers: { Accept: "application/json" },
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error?.name === "AbortError") {
      throw error;
    }
    throw new TokenServiceError("The token service could not be reached. Check your connection and try again.", {
      code: "NetworkError",
    });
  }
  // When the sign-in has lapsed the platform answers an API call with a redirect to the sign-in
  // page (an HTML page), not with the service's JSON.
  if (response.status === 401 || (response.redirected && new URL(response.url).pathname !== path)) {
    throw new TokenServiceError(SIGN_IN_ENDED, { status: 401, code: "Unauthenticated", signInRequired: true });
  }
  return response;
}

async function readJson(response) {
  const type = response.headers.get("Content-Type") || "";
  if (!type.includes("application/json")) {
    return undefined;
  }
  try {
    return await response.json();
  } catch {
    return undefined;
  }
}

/**
 * Seconds to wait from a Retry-After value: whole seconds, or an HTTP date (RFC 9110 10.2.3).
 * Undefined when absent or unreadable.
 */
export function parseRetryAfter(value, now = Date.now()) {
  const text = (value || "").trim();
  if (/^\d+$/.test(text)) {
    return Number.parseInt(text, 10);
  }
  const at = Date.parse(text);
  return text && Number.isFinite(at) ? Math.max(0, Math.ceil((at - now) / 1000)) : undefined;
}

async function failure(response, whatFailed) {
  const body = await readJson(response);
  const retryAfterSeconds = parseRetryAfter(response.headers.get("Retry-After"));
  let message = body?.error?.message || `${whatFailed} failed (HTTP ${response.status}).`;
  if (retryAfterSeconds !== undefined) {
    message += ` Try again in ${retryAfterSeconds} second${retryAfterSeconds === 1 ? "" : "s"}.`;
  }
  const code = body?.error?.code || `Http${response.status}`;
  return new TokenServiceError(message, {
    status: response.status,
    code,
    retryAfterSeconds,
    explanation: explainCode(response.status, code),
  });
}

/** The token answer, checked, with the service's clock reading (its Date header) when it sent one. */
async function issuedToken(response) {
  const body = await readJson(response);
  if (!body || typeof body.token !== "string" || typeof body.communicationUserId !== "string") {
    throw new TokenServiceError("The token service sent an answer this page does not understand.", {
      status: response.status,
      code: "UnexpectedResponse",
    });
  }
  const serverDate = Date.parse(response.headers.get("Date") || "");
  return { ...body, serverTime: Number.isFinite(serverDate) ? serverDate : undefined, receivedAt: Date.now() };
}

/**
 * @typedef {{communicationUserId: string, token: string, expiresOn: string,
 *   serverTime?: number, receivedAt: number}} IssuedToken  serverTime: the answer's Date header
 *   (ms), to read expiresOn against the service's clock rather than this device's
 */

/**
 * Issues a token for the signed-in user (creating their communication identity on first use).
 * @param {{scopes: string[], expiresInMinutes: number}} request
 * @param {{fresh?: boolean}} [options] fresh: false lets the service hand out a token it issued
 *   moments ago for the same scopes and lifetime (what a proactive background refresh wants)
 * @returns {Promise<IssuedToken>}
 */
export async function issueToken(request, { fresh = true } = {}) {
  const response = await call("POST", "/api/token", request, { fresh });
  if (response.status !== 200) {
    throw await failure(response, "Getting a token");
  }
  return issuedToken(response);
}

/**
 * Issues a Teams meeting guest token: a new short-lived identity that may only join calls and
 * meetings (voip.join), for a person who is not an app user. No sign-in needed.
 * @param {string} displayName  the name the person typed (shown to the meeting, not an identity)
 * @returns {Promise<IssuedToken & {displayName: string, scopes?: string[]}>}
 */
export async function issueGuestToken(displayName) {
  const response = await call("POST", "/api/guest/token", { displayName });
  if (response.status !== 200) {
    throw await failure(response, "Getting a guest token");
  }
  return issuedToken(response);
}

/**
 * The signed-in user's communication identity, or null when they have none.
 * @returns {Promise<{appUserId: string, communicationUserId: string} | null>}
 */
export async function getIdentity() {
  const response = await call("GET", "/api/identity");
  if (response.status === 404) {
    return null;
  }
  if (response.status !== 200) {
    throw await failure(response, "Looking up your identity");
  }
  return readJson(response);
}

/** Revokes every token issued so far to the user's communication identity. */
export async function revokeTokens() {
  const response = await call("POST", "/api/token/revoke");
  if (response.status !== 204) {
    throw await failure(response, "Revoking your tokens");
  }
}

/** Deletes the user's communication identity; succeeds also when there was none. */
export async function deleteIdentity() {
  const response = await call("DELETE", "/api/identity");
  if (response.status !== 204) {
    throw await failure(response, "Deleting your identity");
  }
}

/**
 * Who the platform says is signed in, or null.
 * @returns {Promise<{userDetails: string, identityProvider: string, userRoles: string[]} | null>}
 */
export async function getSignedInUser() {
  const response = await call("GET", "/.auth/me");
  if (response.status !== 200) {
    throw await failure(response, "Checking your sign-in");
  }
  const body = await readJson(response);
  return body?.clientPrincipal ?? null;
}
