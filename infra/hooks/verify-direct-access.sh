#!/bin/sh
# Proves, after each provision and each deployment, that the function app refuses callers who go
# around the static web app. The app trusts the x-ms-client-principal header
# (TRUST_CLIENT_PRINCIPAL=true) only because its authentication (infra/app/api-auth.bicep)
# admits nothing but the static web app; if that protection were missing, anyone could claim to
# be any user by forging the header.
#
# The probe sends a forged principal straight to the function app's own hostname and reads
# (GET /api/identity), so it never creates an ACS identity. Three outcomes:
#   exit 0  SAFE      401/403, or a redirect to /.auth/ (sign in first): the platform refused it.
#   exit 1  UNSAFE    any other answer (200, 404 "no identity yet", 400, 429, a redirect elsewhere):
#                     the request got past the platform to a host that would read the forged header.
#   exit 3  COULD NOT VERIFY  no answer (DNS, refused connection, timeout) or only 5xx after every
#                     attempt: nothing is known, so nothing is claimed either way.
#   exit 2  usage error (no URL).
#
# Usage: verify-direct-access.sh [function-app-base-url]   (default: $SERVICE_API_URI, set by azd)
# Tuning: VERIFY_ATTEMPTS (5), VERIFY_RETRY_SECONDS (10), VERIFY_TIMEOUT_SECONDS (60).
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

url="${base_url%/}/api/identity"
errors=$(mktemp)
trap 'rm -f "$errors"' EXIT
forged=$(printf '%s' '{"identityProvider":"aad","userId":"forged-probe","userDetails":"forged-probe","userRoles":["anonymous","authenticated"]}' | base64 | tr -d '\n')
attempts="${VERIFY_ATTEMPTS:-5}"
code=000
why=""
i=1
while [ "$i" -le "$attempts" ]; do
  answer=$(curl --silent --show-error --output /dev/null --write-out '%{http_code} %{redirect_url}' \
    --max-time "${VERIFY_TIMEOUT_SECONDS:-60}" \
    --header "x-ms-client-principal: $forged" "$url" 2>"$errors") || true
  why=$(tr '\n' ' ' <"$errors" | sed 's/ *$//')
  code=${answer%% *}
  location=${answer#* }
  [ -n "$code" ] || code=000
  case "$code" in
    401 | 403)
      echo "verify-direct-access: SAFE: direct callers are refused (HTTP $code from $url): x-ms-client-principal can be trusted"
      exit 0
      ;;
    3*)
      case "$location" in
        */.auth/*)
          echo "verify-direct-access: SAFE: direct callers are sent to sign in (HTTP $code from $url): x-ms-client-principal can be trusted"
          exit 0
          ;;
      esac
      break
      ;;
    000 | 5*)
      # No answer, or the platform/host still starting (cold start, deployment in progress).
      echo "verify-direct-access: attempt $i/$attempts: ${why:-HTTP $code}; retrying" >&2
      if [ "$i" -lt "$attempts" ]; then
        sleep "${VERIFY_RETRY_SECONDS:-10}"
      fi
      ;;
    *)
      break
      ;;
  esac
  i=$((i + 1))
done

case "$code" in
  000 | 5*)
    cat >&2 <<MSG
verify-direct-access: COULD NOT VERIFY: $url gave no usable answer in $attempts attempts (last: ${why:-HTTP $code}).
Nothing is known about whether direct callers are refused; this is not a finding that the app is unsafe.
Check that the app is running, then run the check again: azd hooks run postdeploy
MSG
    exit 3
    ;;
esac

cat >&2 <<MSG
verify-direct-access: UNSAFE: the function app answered a forged x-ms-client-principal with HTTP $code ($url).
Direct callers are not blocked, so anyone could act as any user. Stop trusting the header:
  azd env set TRUST_CLIENT_PRINCIPAL false && azd provision
and give callers OIDC bearer tokens instead (OIDC_ISSUER / OIDC_AUDIENCE), or check the function
app's authentication (infra/app/api-auth.bicep: require authentication, Return401, only the
"Azure Static Web Apps" provider) and provision again.
MSG
exit 1
