#!/bin/sh
# Before the first deployment to Flex Consumption: wait until the role assignments this
# provision just made have taken effect, instead of failing the deployment with 403.
#
# Flex Consumption deploys by writing the package to a blob container with the app's identity,
# whose Storage Blob Data Owner role was created minutes earlier. Azure RBAC changes can take up
# to 10 minutes to apply (learn.microsoft.com/azure/role-based-access-control/troubleshooting#symptom---role-assignment-changes-are-not-being-detected),
# and until then storage answers 403 AuthorizationPermissionMismatch. The deploying user got the
# same role on the same account in the same deployment (principalId in main.bicep), so this
# retries that user's read of the deployment container while it answers 403, for a bounded time,
# saying what it waits for. It cannot act as the app's identity; a grant made in the same
# deployment on the same scope is the closest signal available from here.
#
# Outcomes: exit 0 when the read succeeds (or nothing needs waiting for: dedicated hosting, no
# deploying user); exit 1 when still 403 after ROLE_WAIT_SECONDS (default 600), or on an answer
# that retrying cannot fix (404: no such container).
#
# Inputs (set by azd from main.bicep's outputs): API_HOSTING, AZURE_STORAGE_BLOB_ENDPOINT,
# DEPLOYMENT_CONTAINER_NAME, AZURE_PRINCIPAL_ID. The storage token comes from
# `azd auth token --scope https://storage.azure.com/.default`, or STORAGE_BEARER_TOKEN if set.
set -u

if [ "${API_HOSTING:-dedicated}" != "flex" ]; then
  echo "wait-for-roles: hosting is ${API_HOSTING:-dedicated}: the deployment does not write with the app's identity; nothing to wait for"
  exit 0
fi
if [ -z "${AZURE_PRINCIPAL_ID:-}" ]; then
  echo "wait-for-roles: no deploying user was granted a role (AZURE_PRINCIPAL_ID empty); nothing to watch, deploying now"
  exit 0
fi
endpoint="${AZURE_STORAGE_BLOB_ENDPOINT:?wait-for-roles: AZURE_STORAGE_BLOB_ENDPOINT is not set (run azd provision first)}"
container="${DEPLOYMENT_CONTAINER_NAME:?wait-for-roles: DEPLOYMENT_CONTAINER_NAME is not set (run azd provision first)}"
token="${STORAGE_BEARER_TOKEN:-}"
if [ -z "$token" ]; then
  token=$(azd auth token --scope https://storage.azure.com/.default --output json | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
fi
if [ -z "$token" ]; then
  echo "wait-for-roles: could not get a storage token from 'azd auth token'; deploying without waiting" >&2
  exit 0
fi

url="${endpoint%/}/${container}?restype=container&comp=list&maxresults=1"
limit="${ROLE_WAIT_SECONDS:-600}"
interval="${ROLE_WAIT_INTERVAL_SECONDS:-15}"
waited=0
attempt=1
while :; do
  code=$(curl --silent --output /dev/null --write-out '%{http_code}' --max-time 30 \
    --header "Authorization: Bearer $token" --header "x-ms-version: 2021-08-06" "$url") || code=000
  case "$code" in
    200)
      echo "wait-for-roles: the Storage Blob Data role on the deployment container is in effect (attempt $attempt, ${waited} s); deploying"
      exit 0
      ;;
    404)
      echo "wait-for-roles: the deployment container $container does not exist at $endpoint (HTTP 404); run azd provision" >&2
      exit 1
      ;;
  esac
  if [ "$waited" -ge "$limit" ]; then
    echo "wait-for-roles: still HTTP $code after ${waited} s: the role assignments of this provision have not taken effect. Run 'azd deploy' again in a few minutes." >&2
    exit 1
  fi
  echo "wait-for-roles: HTTP $code reading the deployment container: waiting for the Storage Blob Data role assignments made by this provision to take effect (Azure RBAC can take up to 10 minutes); attempt $attempt, ${waited}/${limit} s"
  sleep "$interval"
  waited=$((waited + interval))
  attempt=$((attempt + 1))
done
