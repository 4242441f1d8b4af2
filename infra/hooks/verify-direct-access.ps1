# Windows twin of verify-direct-access.sh (see there for why): a forged x-ms-client-principal sent
# straight to the function app must be refused. Same outcomes and exit codes:
#   0 SAFE (401/403, or a redirect to /.auth/), 1 UNSAFE (any other answer),
#   3 COULD NOT VERIFY (no answer, or only 5xx, after every attempt), 2 usage error.
param([string]$BaseUrl = $env:SERVICE_API_URI)
$ErrorActionPreference = 'Stop'

if (-not $BaseUrl) { Write-Error 'verify-direct-access: no function app URL (pass it or set SERVICE_API_URI)'; exit 2 }
if ($env:TRUST_CLIENT_PRINCIPAL -eq 'false') {
    Write-Host 'verify-direct-access: TRUST_CLIENT_PRINCIPAL=false, the header is ignored; nothing to check'
    exit 0
}

$attempts = if ($env:VERIFY_ATTEMPTS) { [int]$env:VERIFY_ATTEMPTS } else { 5 }
$retrySeconds = if ($env:VERIFY_RETRY_SECONDS) { [int]$env:VERIFY_RETRY_SECONDS } else { 10 }
$timeoutSeconds = if ($env:VERIFY_TIMEOUT_SECONDS) { [int]$env:VERIFY_TIMEOUT_SECONDS } else { 60 }
$json = '{"identityProvider":"aad","userId":"forged-probe","userDetails":"forged-probe","userRoles":["anonymous","authenticated"]}'
$forged = [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($json))
$uri = $BaseUrl.TrimEnd('/') + '/api/identity'
$code = 0
$why = ''
for ($i = 1; $i -le $attempts; $i++) {
    $location = ''
    try {
        $response = Invoke-WebRequest -Uri $uri -Headers @{ 'x-ms-client-principal' = $forged } -TimeoutSec $timeoutSeconds `
            -SkipHttpErrorCheck -MaximumRedirection 0 -UseBasicParsing
        $code = [int]$response.StatusCode
        $location = [string]$response.Headers['Location']
    } catch {
        $code = 0
        $why = $_.Exception.Message
    }
    if ($code -eq 401 -or $code -eq 403) {
        Write-Host "verify-direct-access: SAFE: direct callers are refused (HTTP $code from $uri): x-ms-client-principal can be trusted"
        exit 0
    }
    if ($code -ge 300 -and $code -lt 400 -and $location -like '*/.auth/*') {
        Write-Host "verify-direct-access: SAFE: direct callers are sent to sign in (HTTP $code from $uri): x-ms-client-principal can be trusted"
        exit 0
    }
    if ($code -ne 0 -and $code -lt 500) { break }
    Write-Host "verify-direct-access: attempt $i/$attempts`: $(if ($why) { $why } else { "HTTP $code" }); retrying"
    if ($i -lt $attempts) { Start-Sleep -Seconds $retrySeconds }
}

if ($code -eq 0 -or $code -ge 500) {
    Write-Host ("verify-direct-access: COULD NOT VERIFY: $uri gave no usable answer in $attempts attempts. " +
        'Nothing is known about whether direct callers are refused; this is not a finding that the app is unsafe. ' +
        'Check that the app is running, then run the check again: azd hooks run postdeploy')
    exit 3
}
Write-Host ("verify-direct-access: UNSAFE: the function app answered a forged x-ms-client-principal with HTTP $code ($uri). " +
    'Direct callers are not blocked. Run: azd env set TRUST_CLIENT_PRINCIPAL false; azd provision ' +
    '(and use OIDC bearer tokens), or check the function app''s authentication (infra/app/api-auth.bicep) and provision again.')
exit 1
