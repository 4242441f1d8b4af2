#!/bin/sh
# Proves, after each deployment, that the function app refuses callers who go around the static
# web app. The app trusts the x-ms-client-principal header (TRUST_CLIENT_PRINCIPAL=true) only
# because linking it to the static web app puts App Service authentication in front of it; if
# that protection were missing, anyone could claim to be any user by forging the header.
#
# The probe sends a forged principal straight to the function app's own hostname:
#   401/403, or a redirect to /.auth/ (sign in first) -> the platform refused it: sound.
#   anything else (404 "no identity yet", 200, ...) -> the app answered a forged user: fail.
# It only reads (GET /api/identity), so it never creates an ACS identity.
#
# Usage: verify-direct-access.sh [function-app-base-url]   (default: $SERVICE_API_URI, set by azd)
set -u

base_url="${1:-${SERVICE_API_URI:-}}"
if [ -z "$base_url" ]; then
  echo "verify-direct-access: no function app URL (pass it or set SERVICE_API_URI)" >&2
  exit 2
fi
if [ "${TRUST_CLIENT_PRINCIPAL:-true}" = "false" ]; then
  echo "verify-direct-access: TRUST_CLIENT_PRINCIPAL=false, the header is ignored; nothing to check"
  exit 0
fi

forged=$(printf '%s' '{"identityProvider":"aad","userId":"forged-probe","userDetails":"forged-probe","userRoles":["anonymous","authenticated"]}' | base64 | tr -d '\n')
attempts="${VERIFY_ATTEMPTS:-5}"
code=000
i=1
while [ "$i" -le "$attempts" ]; do
  answer=$(curl --silent --output /dev/null --write-out '%{http_code} %{redirect_url}' \
    --max-time "${VERIFY_TIMEOUT_SECONDS:-60}" \
    --header "x-ms-client-principal: $forged" "${base_url%/}/api/identity") || answer=000
  code=${answer%% *}
  location=${answer#* }
  case "$code" in
    401 | 403)
      echo "verify-direct-access: direct callers are refused (HTTP $code): x-ms-client-principal can be trusted"
      exit 0
      ;;
    3*)
      case "$location" in
        */.auth/*)
          echo "verify-direct-access: direct callers are sent to sign in (HTTP $code): x-ms-client-principal can be trusted"
          exit 0
          ;;
      esac
      break
      ;;
    000 | 5*)
      # Cold start or the app still starting after deployment: try again.
      echo "verify-direct-access: attempt $i/$attempts got HTTP $code, retrying" >&2
      sleep "${VERIFY_RETRY_SECONDS:-10}"
      ;;
    *)
      break
      ;;
  esac
  i=$((i + 1))
done

cat >&2 <<MSG
verify-direct-access: UNSAFE: the function app answered a forged x-ms-client-principal with HTTP $code.
Direct callers are not blocked, so anyone could act as any user. Stop trusting the header:
  azd env set TRUST_CLIENT_PRINCIPAL false && azd provision
and give callers OIDC bearer tokens instead (OIDC_ISSUER / OIDC_AUDIENCE), or check the
function app's Authentication blade for the "Azure Static Web Apps (Linked)" provider.
MSG
exit 1
