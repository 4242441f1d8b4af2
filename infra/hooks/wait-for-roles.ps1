# Windows twin of wait-for-roles.sh (see there for why): before a Flex Consumption deployment,
# retry the deploying user's read of the deployment container while it answers 403, for a bounded
# time (ROLE_WAIT_SECONDS, default 600), saying what it waits for.
$ErrorActionPreference = 'Stop'
if ($env:API_HOSTING -ne 'flex') {
    Write-Host "wait-for-roles: hosting is $(if ($env:API_HOSTING) { $env:API_HOSTING } else { 'dedicated' }): the deployment does not write with the app's identity; nothing to wait for"
    exit 0
}
if (-not $env:AZURE_PRINCIPAL_ID) { Write-Host 'wait-for-roles: no deploying user was granted a role; deploying now'; exit 0 }
if (-not $env:AZURE_STORAGE_BLOB_ENDPOINT -or -not $env:DEPLOYMENT_CONTAINER_NAME) {
    Write-Host 'wait-for-roles: AZURE_STORAGE_BLOB_ENDPOINT / DEPLOYMENT_CONTAINER_NAME not set (run azd provision first)'; exit 1
}
$token = $env:STORAGE_BEARER_TOKEN
if (-not $token) { $token = (azd auth token --scope https://storage.azure.com/.default --output json | ConvertFrom-Json).token }
if (-not $token) { Write-Host "wait-for-roles: could not get a storage token from 'azd auth token'; deploying without waiting"; exit 0 }
$uri = $env:AZURE_STORAGE_BLOB_ENDPOINT.TrimEnd('/') + '/' + $env:DEPLOYMENT_CONTAINER_NAME + '?restype=container&comp=list&maxresults=1'
$limit = if ($env:ROLE_WAIT_SECONDS) { [int]$env:ROLE_WAIT_SECONDS } else { 600 }
$interval = if ($env:ROLE_WAIT_INTERVAL_SECONDS) { [int]$env:ROLE_WAIT_INTERVAL_SECONDS } else { 15 }
$waited = 0
for ($attempt = 1; ; $attempt++) {
    try {
        $code = [int](Invoke-WebRequest -Uri $uri -Headers @{ Authorization = "Bearer $token"; 'x-ms-version' = '2021-08-06' } `
            -TimeoutSec 30 -SkipHttpErrorCheck -UseBasicParsing).StatusCode
    } catch { $code = 0 }
    if ($code -eq 200) { Write-Host "wait-for-roles: the Storage Blob Data role on the deployment container is in effect (attempt $attempt, $waited s); deploying"; exit 0 }
    if ($code -eq 404) { Write-Host "wait-for-roles: the deployment container does not exist (HTTP 404); run azd provision"; exit 1 }
    if ($waited -ge $limit) {
        Write-Host "wait-for-roles: still HTTP $code after $waited s: the role assignments of this provision have not taken effect. Run 'azd deploy' again in a few minutes."
        exit 1
    }
    Write-Host "wait-for-roles: HTTP $code reading the deployment container: waiting for the Storage Blob Data role assignments made by this provision to take effect (Azure RBAC can take up to 10 minutes); attempt $attempt, $waited/$limit s"
    Start-Sleep -Seconds $interval
    $waited += $interval
}
