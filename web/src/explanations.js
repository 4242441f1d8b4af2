// What the token service's refusal codes mean for the person reading the page, and what they can
// do about it. The service's own message says what happened; this says what to do next. Codes are
// the ones README.md "## API" and openapi.yaml list.

const BY_CODE = {
  // 403: the access policy (who may get tokens at all).
  RoleRequired:
    "Your sign-in worked, but this service only gives tokens to accounts with a particular role. The site's owner can give your account that role.",
  ProviderNotAllowed:
    "This service does not accept accounts of the provider you signed in with. Sign out and sign in with another kind of account.",
  TenantNotAllowed:
    "Accounts of your organisation are not admitted here. Sign in with an account of an admitted organisation, or ask the site's owner.",
  EmailDomainNotAllowed:
    "Accounts with your e-mail domain are not admitted here. Sign in with another account, or ask the site's owner.",
  AccountDeleted:
    "The app has deleted this account, so it gets no new tokens. If that is a mistake, the site's owner can restore it.",
  // 403: what the person's role allows.
  ScopeNotAllowed: "Your role does not allow every scope you chose. Untick the scopes your role does not allow and try again.",
  LifetimeNotAllowed: "Your role allows shorter tokens. Choose a shorter lifetime and try again.",
  NotAdmin: "Only operators (the admin role) may do this.",
  // The guest flow.
  GuestAccessDisabled:
    "Nobody can get a guest token here: guest access is off. Ask whoever invited you for another way to join the meeting, or sign in if you have an account.",
  InvalidDisplayName: "Type the name people in the meeting will see: plain letters, numbers and punctuation.",
  GuestBudgetExceeded:
    "Many guests asked for tokens in the last minute, so the service is pacing them. The page tries again by itself.",
};

/**
 * A sentence explaining a refusal, or undefined when the page has nothing to add to the
 * service's message.
 * @param {number} status
 * @param {string} code
 */
export function explainCode(status, code) {
  if (Object.hasOwn(BY_CODE, code)) {
    return BY_CODE[code];
  }
  if (status === 403) {
    return "The service understood who you are but does not allow this. The site's owner can tell you why.";
  }
  return undefined;
}
