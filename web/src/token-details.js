// What the page may show about a token without showing the token: the scopes it grants and a
// short identifier. The token itself is a bearer secret and never reaches the page or console.

const SCOPE_LIST = /^[a-z.]+(,[a-z.]+)*$/;

/** Claims of a JWT, or null when the token is not a readable JWT. No signature check: display only. */
export function readClaims(token) {
  const parts = typeof token === "string" ? token.split(".") : [];
  if (parts.length !== 3) {
    return null;
  }
  try {
    const base64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

function scopeList(value) {
  if (Array.isArray(value) && value.every((s) => typeof s === "string")) {
    return value;
  }
  if (typeof value === "string" && SCOPE_LIST.test(value)) {
    return value.split(",");
  }
  return null;
}

/**
 * The scopes the token grants: its `acsScope` claim ("chat,voip"), else a textual `scp`, else
 * (for a token the page cannot read) what was asked for, marked as such.
 * @returns {{scopes: string[], source: "token" | "requested"}}
 */
export function grantedScopes(token, requested) {
  const claims = readClaims(token);
  const fromToken = scopeList(claims?.acsScope) ?? scopeList(claims?.scp);
  if (fromToken) {
    return { scopes: fromToken, source: "token" };
  }
  return { scopes: [...(requested ?? [])], source: "requested" };
}

/** The token's last six characters: enough to see that a refresh brought a new one. */
export function tokenId(token) {
  return token.slice(-6);
}

/**
 * When the token expires by this device's clock (ms since the epoch). The credential compares
 * expiresOnTimestamp with the device's clock, so a device clock that is off (say, an hour fast)
 * would make a new token look expired, or nearly so, and send the credential into refresh after
 * refresh (Azure/azure-sdk#3712). The token's remaining lifetime is therefore read against the
 * service's clock (its Date header, `serverTime`) and counted from when the answer arrived. The
 * Date header has whole seconds, so the lifetime is counted one second short.
 * @param {{expiresOn: string, serverTime?: number, receivedAt?: number}} issued
 */
export function localExpiresOn(issued) {
  const expires = Date.parse(issued.expiresOn);
  if (!Number.isFinite(issued.serverTime) || !Number.isFinite(issued.receivedAt)) {
    return expires;
  }
  return issued.receivedAt + (expires - issued.serverTime) - 1000;
}
