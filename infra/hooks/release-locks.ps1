# Windows twin of release-locks.sh (see there for why): before `azd down`, refuse unless
# ALLOW_DATA_DELETION=true, then delete the two CanNotDelete locks (ACS and storage) and nothing else.
$ErrorActionPreference = 'Stop'
if ($env:ALLOW_DATA_DELETION -ne 'true') {
    Write-Host ("release-locks: refusing: azd down would delete the Communication Services resource (every user's ACS identity) " +
        'and the storage account (the table mapping users to them). Both are locked against deletion. If that is really what you want: ' +
        'azd env set ALLOW_DATA_DELETION true; azd down')
    exit 1
}
$arm = if ($env:ARM_ENDPOINT) { $env:ARM_ENDPOINT.TrimEnd('/') } else { 'https://management.azure.com' }
$token = $env:ARM_BEARER_TOKEN
if (-not $token) { $token = (azd auth token --output json | ConvertFrom-Json).token }
if (-not $token) { Write-Host "release-locks: could not get a management token from 'azd auth token'"; exit 1 }
$status = 0
foreach ($lock in @($env:ACS_LOCK_ID, $env:STORAGE_LOCK_ID)) {
    if (-not $lock) { Write-Host 'release-locks: a lock id is missing (ACS_LOCK_ID / STORAGE_LOCK_ID)'; continue }
    try {
        $code = [int](Invoke-WebRequest -Method Delete -Uri "$arm$lock`?api-version=2020-05-01" -Headers @{ Authorization = "Bearer $token" } `
            -TimeoutSec 60 -SkipHttpErrorCheck -UseBasicParsing).StatusCode
    } catch { $code = 0 }
    if ($code -eq 200 -or $code -eq 204) { Write-Host "release-locks: deleted $lock" }
    elseif ($code -eq 404) { Write-Host "release-locks: already gone: $lock" }
    else { Write-Host "release-locks: could not delete $lock (HTTP $code); deleting a lock needs Owner or User Access Administrator"; $status = 1 }
}
exit $status
