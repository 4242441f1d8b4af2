// How the page's tokenRefresher rides out passing failures of the token service, so the
// AzureCommunicationTokenCredential around it never sees them.
//
// Why the refresher itself must retry: the credential (@azure/communication-common) calls the
// refresher from its own timer and does not retry a refresher that throws; the rejection is lost
// and no further proactive refresh is scheduled. A refresher that instead hands back the token it
// already has (nearly expired) makes the credential refresh again at half the remaining lifetime,
// over and over, and one that returns an expired token makes it throw "The token returned from the
// tokenRefresher is expired." (Azure/azure-sdk#3712, decided in the Azure SDK architecture board
// review; implemented in Azure/azure-sdk-for-js#19804, communication-common 1.2.0 changelog:
// "subsequent refresh attempts will be scheduled for when the token reaches half of its remaining
// lifetime until a token with long enough validity (>10 minutes) is obtained"). So this module
// keeps asking, politely, until a new token arrives or the current one is about to run out, and
// never returns anything but a newly obtained token.
//
// The policy, one answer per failed attempt:
//   429 or 503 with Retry-After  -> wait Retry-After (capped), plus a small bounded jitter, then retry
//   no answer (network), 408, 500, 502, 503, 504 without Retry-After
//                                -> exponential backoff with jitter, then retry
//   401 (sign-in ended)          -> stop: the person must sign in again
//   anything else (400, 403, 404, …) -> stop: retrying cannot change the answer
// and never past the deadline the caller gives (for a background refresh: shortly before the token
// in hand expires).

export const RETRY_POLICY = Object.freeze({
  /** A Retry-After longer than this is waited for only this long (the service's are seconds). */
  maxRetryAfterMs: 60_000,
  /** Jitter added on top of Retry-After: a fraction of it, and never more than maxJitterMs. */
  jitterFraction: 0.2,
  maxJitterMs: 3_000,
  /** Exponential backoff for failures that say nothing about when to come back. */
  backoffBaseMs: 1_000,
  backoffMaxMs: 30_000,
  /** At most this many attempts in one refresh, whatever the deadline. */
  maxAttempts: 12,
});

/** HTTP statuses that mean "try again later" even without a Retry-After. */
const TRANSIENT_STATUSES = new Set([408, 429, 500, 502, 503, 504]);

/**
 * What to do after a failed attempt.
 * @param {{status?: number, retryAfterSeconds?: number}} error  a TokenServiceError (status 0: no answer)
 * @param {number} attempt  how many attempts have failed before this one (0 for the first)
 * @param {() => number} [random]  a number in [0, 1)
 * @returns {{action: "retry", delayMs: number, reason: "retry-after" | "backoff"}
 *          | {action: "sign-in"} | {action: "stop"}}
 */
export function nextStep(error, attempt, random = Math.random, policy = RETRY_POLICY) {
  const status = Number.isInteger(error?.status) ? error.status : 0;
  if (status === 401) {
    return { action: "sign-in" };
  }
  const retryAfter = error?.retryAfterSeconds;
  if ((status === 429 || status === 503) && Number.isFinite(retryAfter) && retryAfter >= 0) {
    const waitMs = Math.min(retryAfter * 1000, policy.maxRetryAfterMs);
    // Jitter only ever adds: a retry before Retry-After would be refused and counted again.
    const jitterMs = random() * Math.min(policy.maxJitterMs, waitMs * policy.jitterFraction);
    return { action: "retry", delayMs: Math.round(waitMs + jitterMs), reason: "retry-after" };
  }
  if (status === 0 || TRANSIENT_STATUSES.has(status)) {
    // "Equal jitter": half the exponential step is fixed, half random, so waits still grow.
    const stepMs = Math.min(policy.backoffMaxMs, policy.backoffBaseMs * 2 ** attempt);
    return { action: "retry", delayMs: Math.round(stepMs / 2 + random() * (stepMs / 2)), reason: "backoff" };
  }
  return { action: "stop" };
}

/** A promise that resolves after `ms`, or rejects at once when `signal` aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason ?? new Error("Aborted"));
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener?.("abort", onAbort);
      resolve();
    }, ms);
    function onAbort() {
      clearTimeout(timer);
      reject(signal.reason ?? new Error("Aborted"));
    }
    signal?.addEventListener?.("abort", onAbort, { once: true });
  });
}

/**
 * Calls `attempt` until it succeeds, following nextStep. Throws the last error when the policy
 * says stop, when the next try would come after `deadline` (ms since the epoch), or after
 * maxAttempts; the error then carries `gaveUp: true` when it was retryable.
 * @template T
 * @param {() => Promise<T>} attempt
 * @param {{deadline: number, onRetry?: (info: {error: any, delayMs: number, attempt: number,
 *   reason: string}) => void, signal?: AbortSignal, now?: () => number, wait?: typeof sleep,
 *   random?: () => number, policy?: typeof RETRY_POLICY}} options
 * @returns {Promise<T>}
 */
export async function withRetries(attempt, options) {
  const { deadline, onRetry, signal, now = Date.now, wait = sleep, random = Math.random, policy = RETRY_POLICY } = options;
  for (let failures = 0; ; failures += 1) {
    try {
      return await attempt();
    } catch (error) {
      const step = nextStep(error, failures, random, policy);
      if (step.action !== "retry") {
        throw error;
      }
      if (failures + 1 >= policy.maxAttempts || now() + step.delayMs > deadline || signal?.aborted) {
        if (error && typeof error === "object") {
          error.gaveUp = true;
        }
        throw error;
      }
      onRetry?.({ error, delayMs: step.delayMs, attempt: failures + 1, reason: step.reason });
      await wait(step.delayMs, signal);
    }
  }
}
