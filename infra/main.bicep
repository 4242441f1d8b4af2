// The ACS token service in Azure, as `azd up` provisions it: a resource group holding the
// function app (Flex Consumption, Python 3.11), its user-assigned identity, storage, Application
// Insights, the Communication Services resource and the static web app in front of it all.
// No secret is created, stored or output: every hop authenticates with Entra ID.

targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; it seeds the unique suffix of every resource name.')
param environmentName string

@minLength(1)
@description('Region of the resource group and everything but the static web app. Must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Region of the static web app (only a few regions host Static Web Apps; content is served from its global edge regardless).')
@allowed([
  'centralus'
  'eastasia'
  'eastus2'
  'westeurope'
  'westus2'
])
param webLocation string = 'westeurope'

@description('Where Communication Services keeps its data at rest, e.g. "United States", "Europe", "UK", "Australia".')
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

param acsAllowedScopes string = 'chat,voip'
param acsDefaultScopes string = 'chat,voip'

@minValue(60)
@maxValue(1440)
param tokenDefaultMinutes int = 60
@minValue(0)
@maxValue(900)
param tokenReuseSeconds int = 60
@minValue(0)
@maxValue(100000)
param tokenRequestsPerMinute int = 60
@minValue(1)
@maxValue(120)
param dependencyTimeoutSeconds int = 10

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

@description('Upper bound on function instances; caps the bill under a flood of requests.')
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

module api 'app/api.bicep' = {
  name: 'api'
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
    acsEndpoint: acs.outputs.endpoint
    tablesEndpoint: storage.outputs.tableEndpoint
    identityTableName: identityTableName
    trustClientPrincipal: trustClientPrincipal
    oidcIssuer: oidcIssuer
    oidcAudience: oidcAudience
    oidcAlgorithms: oidcAlgorithms
    acsAllowedScopes: acsAllowedScopes
    acsDefaultScopes: acsDefaultScopes
    tokenDefaultMinutes: tokenDefaultMinutes
    tokenReuseSeconds: tokenReuseSeconds
    tokenRequestsPerMinute: tokenRequestsPerMinute
    dependencyTimeoutSeconds: dependencyTimeoutSeconds
    cleanupSchedule: cleanupSchedule
    cleanupDryRun: cleanupDryRun
    cleanupInactiveDays: cleanupInactiveDays
    cleanupTimeBudgetSeconds: cleanupTimeBudgetSeconds
    cleanupConcurrency: cleanupConcurrency
    cleanupTombstoneRetentionHours: cleanupTombstoneRetentionHours
  }
}

module web 'app/web.bicep' = {
  name: 'web'
  scope: rg
  params: {
    name: 'stapp-${resourceToken}'
    location: webLocation
    tags: tags
    functionAppId: api.outputs.id
    functionAppLocation: api.outputs.location
  }
}

// Read by azd (and printed by `azd env get-values`); none of them is a secret.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = api.outputs.uri
output SERVICE_WEB_NAME string = web.outputs.name
output SERVICE_WEB_URI string = web.outputs.uri
output AZURE_STATIC_WEB_APP_URL string = web.outputs.uri
output ACS_ENDPOINT string = acs.outputs.endpoint
output ACS_RESOURCE_NAME string = acs.outputs.name
output TABLES_ENDPOINT string = storage.outputs.tableEndpoint
output IDENTITY_TABLE_NAME string = storage.outputs.tableName
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output API_IDENTITY_CLIENT_ID string = identity.outputs.clientId
