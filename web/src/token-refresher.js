// The tokenRefresher both pages hand to AzureCommunicationTokenCredential, and that the pages
// themselves call for a person's "get a token". It asks the token service through
// retry-policy.js, so a passing failure (429 or 503 with Retry-After, a dropped connection) is
// waited out instead of reaching the credential, and it tells the page what is going on as it
// happens. It only ever returns a token newly obtained from the service.

import { withRetries } from "./retry-policy.js";
import { localExpiresOn } from "./token-details.js";
import { TokenServiceError } from "./token-service.js";

/** A background refresh gives up this long before the token in hand expires. */
export const EXPIRY_MARGIN_MS = 30_000;
/** How long a person's own request (or a refresh with no valid token in hand) keeps trying. */
export const FOREGROUND_WAIT_MS = 120_000;

/**
 * @template {{token: string, expiresOn: string}} T
 * @param {{
 *   obtain: () => Promise<T>,
 *   tokenInHandExpiresAt: () => number,
 *   onRetry?: (info: {error: any, delayMs: number, attempt: number, reason: string, background: boolean,
 *     tokenInHandExpiresAt: number}) => void,
 *   now?: () => number, wait?: (ms: number, signal?: AbortSignal) => Promise<void>, random?: () => number,
 * }} options  obtain: one call to the token service; tokenInHandExpiresAt: when the token the
 *   credential holds expires by this device's clock (0 when there is none)
 * @returns {(how?: {background?: boolean, signal?: AbortSignal}) => Promise<T & {expiresOnTimestamp: number}>}
 */
export function createRefresher({ obtain, tokenInHandExpiresAt, onRetry, now = Date.now, wait, random }) {
  return async function refresh({ background = false, signal } = {}) {
    const held = tokenInHandExpiresAt();
    const start = now();
    // In the background there is time until the token in hand runs out; a person waiting on a
    // click (or a page without a valid token) gets a bounded wait.
    const deadline = background && held - EXPIRY_MARGIN_MS > start ? held - EXPIRY_MARGIN_MS : start + FOREGROUND_WAIT_MS;
    const issued = await withRetries(obtain, {
      deadline,
      signal,
      now,
      wait,
      random,
      onRetry: (info) => onRetry?.({ ...info, background, tokenInHandExpiresAt: held }),
    });
    const expiresOnTimestamp = localExpiresOn(issued);
    if (!(expiresOnTimestamp > now())) {
      // Handing the credential an expired token makes it throw; say what happened instead.
      throw new TokenServiceError("The token service sent a token that has already expired. Check this device's clock.", {
        status: 200,
        code: "ExpiredToken",
      });
    }
    return { ...issued, expiresOnTimestamp };
  };
}
