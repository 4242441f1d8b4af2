// The token service on a dedicated Linux App Service plan (hosting = "dedicated", the default):
// a hosting plan the Static Web Apps documentation lists for "bring your own functions"
// (learn.microsoft.com/azure/static-web-apps/apis-functions: Consumption, Premium, Dedicated).
// Always On keeps the host running, so there is no cold start and the cleanup timer fires
// (learn.microsoft.com/azure/azure-functions/dedicated-plan#always-on). It holds no secret: the
// host's storage, Table Storage, ACS and Application Insights are reached with the user-assigned
// identity, and azd deploys with an Entra token (basic publishing credentials are off).
//
// appSettings lists exactly the settings the code reads (passed in from main.bicep) plus the
// settings the Functions host and the build read. tests/infra/test_infra.py keeps both equal.

param name string
param location string
param tags object = {}

param planName string

@description('Plan size. B1 is the smallest with Always On.')
@allowed([
  'B1'
  'B2'
  'B3'
  'P0v3'
  'P1v3'
])
param sku string = 'B1'

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string
@description('Client id of that identity: DefaultAzureCredential and the host pick it by this id.')
param identityClientId string

param storageBlobEndpoint string
param storageQueueEndpoint string

param applicationInsightsConnectionString string

@description('The settings the code reads, as {name, value} pairs.')
param appSettings array

var hostSettings = [
  {
    // Functions runtime 4 with the Python worker (learn.microsoft.com/azure/azure-functions/functions-app-settings).
    name: 'FUNCTIONS_EXTENSION_VERSION'
    value: '~4'
  }
  {
    name: 'FUNCTIONS_WORKER_RUNTIME'
    value: 'python'
  }
  {
    // azd uploads the source; the platform installs requirements.txt (remote build).
    name: 'SCM_DO_BUILD_DURING_DEPLOYMENT'
    value: 'true'
  }
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: identityClientId
  }
  {
    name: 'AzureWebJobsStorage__blobServiceUri'
    value: storageBlobEndpoint
  }
  {
    name: 'AzureWebJobsStorage__queueServiceUri'
    value: storageQueueEndpoint
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: applicationInsightsConnectionString
  }
  {
    // Telemetry is sent with the managed identity: the component refuses key-only ingestion.
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'ClientId=${identityClientId};Authorization=AAD'
  }
  {
    // host.json's telemetryMode OpenTelemetry, Python side: the worker makes the host's trace
    // context current for each invocation (the app's spans join the host's request) and tells
    // the host the app exports its own logs, so no log row is written twice; the app configures
    // the Azure Monitor distro itself (shared/telemetry/azure_monitor.py).
    // learn.microsoft.com/azure/azure-functions/opentelemetry-howto (Python),
    // Azure/azure-functions-python-worker: WorkerOpenTelemetryEnabled capability.
    name: 'PYTHON_ENABLE_OPENTELEMETRY'
    value: 'true'
  }
]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy needs a Premium plan with three instances; one small instance keeps the cost at rest low for a token service. Choose a P*v3 size with zoneRedundant where an outage of one zone is not acceptable.
  // checkov:skip=CKV_AZURE_211: B1 is the smallest plan with Always On; choose dedicatedSku P0v3 or P1v3 for production load.
  // checkov:skip=CKV_AZURE_212: One instance by default to keep the cost at rest low; raise the capacity for failover.
  name: planName
  location: location
  tags: tags
  kind: 'linux'
  sku: {
    name: sku
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: A static web app's linked backend must stay publicly reachable (no IP restrictions or private endpoints); its authentication (app/api-auth.bicep) admits only the static web app.
  // checkov:skip=CKV_AZURE_17: Client certificates would refuse the static web app's own proxy requests; callers are authenticated by the link (or by OIDC bearer tokens) instead.
  // checkov:skip=CKV_AZURE_212: One instance of the smallest Always On plan keeps the cost at rest low; raise the plan's capacity where a failover instance is needed.
  // checkov:skip=CKV_AZURE_213: /api/health probes ACS and Table Storage; a platform ping every minute would add dependency calls and cost to a service that is always on.
  name: name
  location: location
  // azd finds the app it deploys the `api` service to by this tag.
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      linuxFxVersion: 'Python|3.11'
      alwaysOn: true
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      // No CORS entry: browsers reach the API only through the static web app's /api route.
      appSettings: concat(hostSettings, appSettings)
    }
  }
}

// Publishing with a user name and password is off: azd deploys with an Entra token.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = functionApp.name
output id string = functionApp.id
output location string = functionApp.location
output uri string = 'https://${functionApp.properties.defaultHostName}'
