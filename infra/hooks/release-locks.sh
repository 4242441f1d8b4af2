#!/bin/sh
# Runs before `azd down`. The Communication Services resource and the storage account carry
# CanNotDelete locks (infra/app/acs.bicep, infra/app/storage.bicep): deleting ACS deletes every
# user's ACS identity, and the storage account holds the table mapping users to them. A locked
# resource makes the resource group's deletion fail, so `azd down` cannot delete them by accident.
#
# To really delete everything, say so first:
#   azd env set ALLOW_DATA_DELETION true && azd down
# Then this hook deletes the two locks (nothing else) and `azd down` goes on.
#
# Outcomes: exit 1 and nothing touched without ALLOW_DATA_DELETION=true; exit 0 when both locks
# are gone (deleted now, or already absent: 404); exit 1 when a lock could not be deleted (e.g.
# 403: deleting a lock needs Owner or User Access Administrator,
# learn.microsoft.com/azure/azure-resource-manager/management/lock-resources#who-can-create-or-delete-locks).
#
# Inputs (set by azd from main.bicep's outputs): ACS_LOCK_ID, STORAGE_LOCK_ID. The management
# token comes from `azd auth token`, or ARM_BEARER_TOKEN if set; ARM_ENDPOINT (default
# https://management.azure.com) is where the locks are deleted.
set -u

if [ "${ALLOW_DATA_DELETION:-false}" != "true" ]; then
  cat >&2 <<MSG
release-locks: refusing: azd down would delete the Communication Services resource (every user's
ACS identity) and the storage account (the table mapping users to them). Both are locked against
deletion. If that is really what you want:
  azd env set ALLOW_DATA_DELETION true && azd down
MSG
  exit 1
fi

arm="${ARM_ENDPOINT:-https://management.azure.com}"
token="${ARM_BEARER_TOKEN:-}"
if [ -z "$token" ]; then
  token=$(azd auth token --output json | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')
fi
if [ -z "$token" ]; then
  echo "release-locks: could not get a management token from 'azd auth token'" >&2
  exit 1
fi

status=0
for lock in "${ACS_LOCK_ID:-}" "${STORAGE_LOCK_ID:-}"; do
  if [ -z "$lock" ]; then
    echo "release-locks: a lock id is missing (ACS_LOCK_ID / STORAGE_LOCK_ID); nothing provisioned yet?" >&2
    continue
  fi
  code=$(curl --silent --output /dev/null --write-out '%{http_code}' --max-time 60 -X DELETE \
    --header "Authorization: Bearer $token" "${arm%/}${lock}?api-version=2020-05-01") || code=000
  case "$code" in
    200 | 204) echo "release-locks: deleted $lock" ;;
    404) echo "release-locks: already gone: $lock" ;;
    *)
      echo "release-locks: could not delete $lock (HTTP $code); deleting a lock needs Owner or User Access Administrator" >&2
      status=1
      ;;
  esac
done
exit $status
