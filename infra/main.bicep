// The ACS token service in Azure, as `azd up` provisions it: a resource group holding the
// function app (Python 3.11) and its hosting plan, its user-assigned identity, storage,
// Application Insights, the Communication Services resource and the static web app in front of
// it all. No secret is created, stored or output: every hop authenticates with Entra ID.
//
// Order: static web app -> function app -> its authentication (authsettingsV2) -> the link that
// makes the function app the static web app's /api backend. The authentication is declared here,
// so every `azd provision` re-applies it instead of relying on the link's side effect.

targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; it seeds the unique suffix of every resource name.')
param environmentName string

@minLength(1)
@description('Region of the resource group and everything but the static web app.')
@metadata({
  azd: {
    type: 'location'
  }
})
// Regions that offer the Flex Consumption plan, so a location that cannot host the `flex` choice is
// refused before anything is created. Source: `az functionapp list-flexconsumption-locations`, the
// list learn.microsoft.com/azure/azure-functions/flex-consumption-how-to#view-currently-supported-regions
// points to; taken 2025-06. Refresh it from that command when Azure adds regions.
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'japanwest'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'switzerlandnorth'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
param location string

@description('How the function app is hosted. "dedicated" (default): a Linux App Service plan, a hosting plan the Static Web Apps "bring your own functions" documentation lists as supported for a linked backend. "flex": Flex Consumption (scale to zero, billed per use), which that documentation does not list; see the README before choosing it.')
@allowed([
  'dedicated'
  'flex'
])
param hosting string = 'dedicated'

@description('Size of the dedicated Linux App Service plan (hosting = "dedicated"). B1 is the smallest size with Always On, which the cleanup timer needs.')
@allowed([
  'B1'
  'B2'
  'B3'
  'P0v3'
  'P1v3'
])
param dedicatedSku string = 'B1'

@description('Flex Consumption only: instances kept warm for the HTTP functions, so no request waits for a cold start. Each one is billed around the clock (see the README). 0 = scale to zero.')
@minValue(0)
@maxValue(20)
param alwaysReadyInstanceCount int = 0

@description('Region of the static web app (only a few regions host Static Web Apps; content is served from its global edge regardless).')
// The regions Microsoft.Web/staticSites accepts (learn.microsoft.com/azure/static-web-apps/overview#regional-availability
// and the resource provider's location list), taken 2025-06.
@allowed([
  'centralus'
  'eastasia'
  'eastus2'
  'westeurope'
  'westus2'
])
param webLocation string = 'westeurope'

@description('Where Communication Services keeps its data at rest.')
// The data locations Communication Services accepts (learn.microsoft.com/azure/communication-services/concepts/privacy#data-residency;
// `az communication create --data-location`), taken 2025-06. The ARM schema types it as free text, so
// without this list a typo would surface only as a failed deployment.
@allowed([
  'Africa'
  'Asia Pacific'
  'Australia'
  'Brazil'
  'Canada'
  'Europe'
  'France'
  'Germany'
  'India'
  'Japan'
  'Korea'
  'Norway'
  'Switzerland'
  'UAE'
  'UK'
  'United States'
])
param acsDataLocation string = 'United States'

@description('Object id of the deploying user (azd sets AZURE_PRINCIPAL_ID). Grants that user the storage data roles. Empty to skip.')
param principalId string = ''

@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param principalType string = 'User'

// --- the app's settings (validated by shared/settings.py; see README "Configuration") ---

@description('Table of app user -> ACS identity mappings: 3-63 letters and digits, starting with a letter.')
@minLength(3)
@maxLength(63)
param identityTableName string = 'acsidentities'

@description('"true": trust x-ms-client-principal, which is sound only behind the linked static web app. "false": accept OIDC bearer tokens only.')
@allowed([
  'true'
  'false'
])
param trustClientPrincipal string = 'true'

@description('OIDC issuer for bearer-token callers; empty disables bearer tokens. Set together with oidcAudience.')
param oidcIssuer string = ''
@description('Audience the bearer tokens must carry; set together with oidcIssuer.')
param oidcAudience string = ''
param oidcAlgorithms string = 'RS256'

@description('ACS token scopes callers may ask for. Voip only by default: chat, chat.join and chat.join.limited retire with ACS Chat on 2028-09-30 (README, After September 2028); the app logs a warning at startup when they are allowed.')
param acsAllowedScopes string = 'voip'
param acsDefaultScopes string = 'voip'

@minValue(60)
@maxValue(1440)
param tokenDefaultMinutes int = 60
@minValue(0)
@maxValue(900)
param tokenReuseSeconds int = 60
@minValue(0)
@maxValue(100000)
param tokenRequestsPerMinute int = 60
@description('Seconds one ACS or Table Storage call may take. Five chained calls must fit in requestDeadlineSeconds (the app refuses to start otherwise).')
@minValue(1)
@maxValue(8)
param dependencyTimeoutSeconds int = 5
@description('Seconds a request may take in all; below the static web app proxy\'s 45 s cut.')
@minValue(5)
@maxValue(44)
param requestDeadlineSeconds int = 25

// --- the access policy and limits (defaults = the code's own; see shared/settings.py) ---

@description('Bearer tokens live at most this long (minutes).')
@minValue(5)
@maxValue(10080)
param oidcMaxTokenLifetimeMinutes int = 1440
@description('How bearer callers become app users: by sub, by Entra tenant + object id, or by issuer ("auto").')
@allowed([
  'auto'
  'sub'
  'tid+oid'
])
param oidcUserKey string = 'auto'
@description('Static Web Apps identity providers admitted, comma-separated, or "*".')
param accessAllowedProviders string = 'aad,github'
@description('Static Web Apps roles a caller needs, comma-separated, or "*".')
param accessRequiredRoles string = 'member'
@description('E-mail domains admitted, comma-separated; empty for any.')
param accessAllowedEmailDomains string = ''
@description('Entra tenant ids admitted, comma-separated; empty for any.')
param accessAllowedTenantIds string = ''
@description('Per-role token scopes and lifetimes: role:scope+scope:minutes entries separated by ";". Empty: the defaults above for everyone.')
param tokenRolePolicy string = ''
@allowed([
  'true'
  'false'
])
param teamsExchangeEnabled string = 'false'
@description('Teams app ids whose tokens may be exchanged, comma-separated (needed when the exchange is on).')
param teamsAllowedAppIds string = ''
@description('Entra tenant ids whose Teams users may exchange tokens, comma-separated.')
param teamsAllowedTenantIds string = ''
@minValue(0)
@maxValue(10000)
param identityChangesPerMinute int = 10
@minValue(0)
@maxValue(10000)
param manageRequestsPerMinute int = 10
@description('Seconds a revoke made on another instance may go unseen here.')
@minValue(0)
@maxValue(60)
param revocationCheckSeconds int = 5
@minValue(0)
@maxValue(100000)
param identityCreationsPerUserPerDay int = 10

@description('"true": serve POST /api/guest/token, a voip.join token for a new short-lived identity to anyone, to join a Teams meeting as a guest (README, After September 2028).')
@allowed([
  'true'
  'false'
])
param guestAccessEnabled string = 'false'
@description('Guest tokens one client address may get per minute, per instance.')
@minValue(1)
@maxValue(1000)
param guestRequestsPerClientPerMinute int = 5
@description('Guest tokens all clients together may get per minute, per instance: bounds the identities an anonymous flood can make.')
@minValue(1)
@maxValue(1000)
param guestRequestsPerMinute int = 30

@description('When the cleanup of deleted users runs: six-field NCRONTAB in UTC (default daily 03:30).')
param cleanupSchedule string = '0 30 3 * * *'
@allowed([
  'true'
  'false'
])
param cleanupDryRun string = 'false'
@minValue(0)
@maxValue(3650)
param cleanupInactiveDays int = 0
@minValue(5)
@maxValue(3600)
param cleanupTimeBudgetSeconds int = 240
@minValue(1)
@maxValue(256)
param cleanupConcurrency int = 16
@description('Hours the marker of a deleted user is kept after the sweep; while it exists the service refuses that user, so a racing request cannot give the deleted account a new identity.')
@minValue(0)
@maxValue(720)
param cleanupTombstoneRetentionHours int = 24

@description('Where the alert rules e-mail; empty: they fire in Azure Monitor only.')
param alertEmail string = ''

@description('Flex Consumption only: upper bound on function instances; caps the bill under a flood of requests. 40 is the lowest Flex Consumption allows.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = 'func-api-${resourceToken}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-api-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: 'app-package-${resourceToken}'
    tableName: identityTableName
  }
}

module acs 'app/acs.bicep' = {
  name: 'acs'
  scope: rg
  params: {
    name: 'acs-${resourceToken}'
    tags: tags
    dataLocation: acsDataLocation
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    tableName: storage.outputs.tableName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    communicationServiceName: acs.outputs.name
    appPrincipalId: identity.outputs.principalId
    userPrincipalId: principalId
    userPrincipalType: principalType
  }
}

// The settings the code reads (shared/settings.py; see README "Configuration"), the same for both
// hosting choices. The hosting modules add the settings their Functions host reads.
var appSettings = [
  {
    name: 'ACS_ENDPOINT'
    value: acs.outputs.endpoint
  }
  {
    name: 'TABLES_ENDPOINT'
    value: storage.outputs.tableEndpoint
  }
  {
    name: 'IDENTITY_TABLE_NAME'
    value: identityTableName
  }
  {
    name: 'AZURE_CLIENT_ID'
    value: identity.outputs.clientId
  }
  {
    // "true" only because the app is the static web app's linked backend and its authentication
    // (declared in app/api-auth.bicep) admits only that static web app, which sets
    // x-ms-client-principal itself. The README's "Deploy to Azure" section has the check that
    // proves it after each provision and deployment.
    name: 'TRUST_CLIENT_PRINCIPAL'
    value: trustClientPrincipal
  }
  {
    name: 'OIDC_ISSUER'
    value: oidcIssuer
  }
  {
    name: 'OIDC_AUDIENCE'
    value: oidcAudience
  }
  {
    name: 'OIDC_ALGORITHMS'
    value: oidcAlgorithms
  }
  {
    name: 'ACS_ALLOWED_SCOPES'
    value: acsAllowedScopes
  }
  {
    name: 'ACS_DEFAULT_SCOPES'
    value: acsDefaultScopes
  }
  {
    name: 'TOKEN_DEFAULT_MINUTES'
    value: string(tokenDefaultMinutes)
  }
  {
    name: 'TOKEN_REUSE_SECONDS'
    value: string(tokenReuseSeconds)
  }
  {
    name: 'TOKEN_REQUESTS_PER_MINUTE'
    value: string(tokenRequestsPerMinute)
  }
  {
    name: 'DEPENDENCY_TIMEOUT_SECONDS'
    value: string(dependencyTimeoutSeconds)
  }
  {
    name: 'REQUEST_DEADLINE_SECONDS'
    value: string(requestDeadlineSeconds)
  }
  {
    name: 'OIDC_MAX_TOKEN_LIFETIME_MINUTES'
    value: string(oidcMaxTokenLifetimeMinutes)
  }
  {
    name: 'OIDC_USER_KEY'
    value: oidcUserKey
  }
  {
    name: 'ACCESS_ALLOWED_PROVIDERS'
    value: accessAllowedProviders
  }
  {
    name: 'ACCESS_REQUIRED_ROLES'
    value: accessRequiredRoles
  }
  {
    name: 'ACCESS_ALLOWED_EMAIL_DOMAINS'
    value: accessAllowedEmailDomains
  }
  {
    name: 'ACCESS_ALLOWED_TENANT_IDS'
    value: accessAllowedTenantIds
  }
  {
    name: 'TOKEN_ROLE_POLICY'
    value: tokenRolePolicy
  }
  {
    name: 'TEAMS_EXCHANGE_ENABLED'
    value: teamsExchangeEnabled
  }
  {
    name: 'TEAMS_ALLOWED_APP_IDS'
    value: teamsAllowedAppIds
  }
  {
    name: 'TEAMS_ALLOWED_TENANT_IDS'
    value: teamsAllowedTenantIds
  }
  {
    name: 'IDENTITY_CHANGES_PER_MINUTE'
    value: string(identityChangesPerMinute)
  }
  {
    name: 'MANAGE_REQUESTS_PER_MINUTE'
    value: string(manageRequestsPerMinute)
  }
  {
    name: 'REVOCATION_CHECK_SECONDS'
    value: string(revocationCheckSeconds)
  }
  {
    name: 'IDENTITY_CREATIONS_PER_USER_PER_DAY'
    value: string(identityCreationsPerUserPerDay)
  }
  {
    name: 'GUEST_ACCESS_ENABLED'
    value: guestAccessEnabled
  }
  {
    // The only value: a guest token lasts at most 60 minutes and ACS issues none shorter.
    name: 'GUEST_TOKEN_MINUTES'
    value: '60'
  }
  {
    name: 'GUEST_REQUESTS_PER_CLIENT_PER_MINUTE'
    value: string(guestRequestsPerClientPerMinute)
  }
  {
    name: 'GUEST_REQUESTS_PER_MINUTE'
    value: string(guestRequestsPerMinute)
  }
  {
    // Read by the timer trigger's binding as %CLEANUP_SCHEDULE% (six-field NCRONTAB, UTC).
    name: 'CLEANUP_SCHEDULE'
    value: cleanupSchedule
  }
  {
    name: 'CLEANUP_DRY_RUN'
    value: cleanupDryRun
  }
  {
    name: 'CLEANUP_INACTIVE_DAYS'
    value: string(cleanupInactiveDays)
  }
  {
    name: 'CLEANUP_TIME_BUDGET_SECONDS'
    value: string(cleanupTimeBudgetSeconds)
  }
  {
    name: 'CLEANUP_CONCURRENCY'
    value: string(cleanupConcurrency)
  }
  {
    name: 'CLEANUP_TOMBSTONE_RETENTION_HOURS'
    value: string(cleanupTombstoneRetentionHours)
  }
]

module web 'app/web.bicep' = {
  name: 'web'
  scope: rg
  params: {
    name: 'stapp-${resourceToken}'
    location: webLocation
    tags: tags
  }
}

module apiDedicated 'app/api-dedicated.bicep' = if (hosting == 'dedicated') {
  name: 'api-dedicated'
  scope: rg
  // The host reaches its storage by identity from its first start, so its roles go in first.
  dependsOn: [
    rbac
  ]
  params: {
    name: functionAppName
    location: location
    tags: tags
    planName: 'plan-${resourceToken}'
    sku: dedicatedSku
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    applicationInsightsConnectionString: monitoring.outputs.applicationInsightsConnectionString
    appSettings: appSettings
  }
}

module apiFlex 'app/api-flex.bicep' = if (hosting == 'flex') {
  name: 'api-flex'
  scope: rg
  // The host reaches its storage and deployment package by identity from its first start, so
  // its roles go in first.
  dependsOn: [
    rbac
  ]
  params: {
    name: functionAppName
    location: location
    tags: tags
    planName: 'plan-${resourceToken}'
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    deploymentContainerName: storage.outputs.deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.applicationInsightsConnectionString
    maximumInstanceCount: maximumInstanceCount
    alwaysReadyInstanceCount: alwaysReadyInstanceCount
    appSettings: appSettings
  }
}

// Whichever hosting module ran; both name the app functionAppName.
var apiId = hosting == 'flex' ? apiFlex.outputs.id : apiDedicated.outputs.id
var apiUri = hosting == 'flex' ? apiFlex.outputs.uri : apiDedicated.outputs.uri

module apiAuth 'app/api-auth.bicep' = {
  name: 'api-auth'
  scope: rg
  dependsOn: [
    apiDedicated
    apiFlex
  ]
  params: {
    functionAppName: functionAppName
    staticWebAppHostname: web.outputs.defaultHostname
  }
}

module link 'app/link.bicep' = {
  name: 'link'
  scope: rg
  // After the authentication: the link configures the app's authentication too, and its write
  // must come last so it is never overwritten by this deployment (see app/api-auth.bicep).
  dependsOn: [
    apiAuth
  ]
  params: {
    staticWebAppName: web.outputs.name
    functionAppId: apiId
    functionAppLocation: location
  }
}

module observability 'app/observability.bicep' = {
  name: 'observability'
  scope: rg
  dependsOn: [
    apiAuth
  ]
  params: {
    location: location
    tags: tags
    logAnalyticsName: monitoring.outputs.logAnalyticsName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    communicationServiceName: acs.outputs.name
    functionAppName: functionAppName
    alertEmail: alertEmail
  }
}

// Read by azd (and printed by `azd env get-values`); none of them is a secret.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionAppName
output SERVICE_API_NAME string = functionAppName
output SERVICE_API_URI string = apiUri
output API_HOSTING string = hosting
output SERVICE_WEB_NAME string = web.outputs.name
output SERVICE_WEB_URI string = web.outputs.uri
output AZURE_STATIC_WEB_APP_URL string = web.outputs.uri
output ACS_ENDPOINT string = acs.outputs.endpoint
output ACS_RESOURCE_NAME string = acs.outputs.name
output TABLES_ENDPOINT string = storage.outputs.tableEndpoint
output IDENTITY_TABLE_NAME string = storage.outputs.tableName
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_STORAGE_BLOB_ENDPOINT string = storage.outputs.blobEndpoint
output DEPLOYMENT_CONTAINER_NAME string = storage.outputs.deploymentContainerName
// The delete locks `azd down` must lift first (infra/hooks/release-locks.sh).
output ACS_LOCK_ID string = acs.outputs.lockId
output STORAGE_LOCK_ID string = storage.outputs.lockId
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output API_IDENTITY_CLIENT_ID string = identity.outputs.clientId
