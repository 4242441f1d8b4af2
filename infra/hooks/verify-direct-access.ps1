# Windows twin of verify-direct-access.sh (see there for why): a forged x-ms-client-principal sent
# straight to the function app must be refused (401/403, or a redirect to /.auth/ to sign in).
param([string]$BaseUrl = $env:SERVICE_API_URI)
$ErrorActionPreference = 'Stop'

if (-not $BaseUrl) { Write-Error 'verify-direct-access: no function app URL (pass it or set SERVICE_API_URI)'; exit 2 }
if ($env:TRUST_CLIENT_PRINCIPAL -eq 'false') {
    Write-Host 'verify-direct-access: TRUST_CLIENT_PRINCIPAL=false, the header is ignored; nothing to check'
    exit 0
}

$json = '{"identityProvider":"aad","userId":"forged-probe","userDetails":"forged-probe","userRoles":["anonymous","authenticated"]}'
$forged = [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($json))
$uri = $BaseUrl.TrimEnd('/') + '/api/identity'
$code = 0
for ($i = 1; $i -le 5; $i++) {
    try {
        $response = Invoke-WebRequest -Uri $uri -Headers @{ 'x-ms-client-principal' = $forged } -TimeoutSec 60 `
            -SkipHttpErrorCheck -MaximumRedirection 0 -UseBasicParsing
        $code = [int]$response.StatusCode
        $location = [string]$response.Headers['Location']
    } catch {
        $code = 0
    }
    if ($code -eq 401 -or $code -eq 403) {
        Write-Host "verify-direct-access: direct callers are refused (HTTP $code): x-ms-client-principal can be trusted"
        exit 0
    }
    if ($code -ge 300 -and $code -lt 400 -and $location -like '*/.auth/*') {
        Write-Host "verify-direct-access: direct callers are sent to sign in (HTTP $code): x-ms-client-principal can be trusted"
        exit 0
    }
    if ($code -ne 0 -and $code -lt 500) { break }
    Write-Host "verify-direct-access: attempt $i/5 got HTTP $code, retrying"
    Start-Sleep -Seconds 10
}

Write-Error ("verify-direct-access: UNSAFE: the function app answered a forged x-ms-client-principal with HTTP $code. " +
    'Direct callers are not blocked. Run: azd env set TRUST_CLIENT_PRINCIPAL false; azd provision ' +
    '(and use OIDC bearer tokens), or check the function app''s "Azure Static Web Apps (Linked)" authentication provider.')
exit 1
