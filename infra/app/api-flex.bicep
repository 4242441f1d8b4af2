// The token service on the Flex Consumption plan (hosting = "flex"): Linux, scale to zero, billed
// per execution. It holds no secret: the host's storage, the deployment package, Table Storage,
// ACS and Application Insights are all reached with the user-assigned identity.
//
// Flex Consumption refuses or ignores many site properties and app settings other plans take
// (learn.microsoft.com/azure/azure-functions/functions-app-settings#flex-consumption-plan-deprecations):
// no siteConfig.ftpsState (ARM error 51021, Azure/azure-cli#31414), no linuxFxVersion, alwaysOn,
// FUNCTIONS_WORKER_RUNTIME or FUNCTIONS_EXTENSION_VERSION: the runtime comes from
// functionAppConfig. tests/infra/bicep_check.py holds the list and fails on any of them here.
// FTP is off regardless: basic publishing credentials are disabled below.
//
// appSettings lists exactly the settings the code reads (shared/settings.py SETTING_NAMES, less
// the two connection strings that exist only for local emulators, passed in from main.bicep) plus
// the settings the Functions host itself reads. tests/infra/test_infra.py keeps both sides equal.

param name string
param location string
param tags object = {}

param planName string

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string
@description('Client id of that identity: DefaultAzureCredential and the host pick it by this id.')
param identityClientId string

param storageBlobEndpoint string
param storageQueueEndpoint string
param deploymentContainerName string

param applicationInsightsConnectionString string

@description('The settings the code reads, as {name, value} pairs.')
param appSettings array

@description('Upper bound on instances: caps the bill under a flood. 40 is the lowest Flex Consumption allows.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Instances kept warm for the HTTP functions; 0 scales to zero.')
@minValue(0)
@maxValue(20)
param alwaysReadyInstanceCount int = 0

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

// Read by the Functions host: its storage reached by identity (blob for keys, timers and locks;
// queue for the host's queue use) and telemetry sent with the identity.
var hostSettings = [
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
  // checkov:skip=CKV_AZURE_225: Zone redundancy for Flex Consumption exists only in some regions; leaving it off keeps every Flex region deployable. Turn on zoneRedundant where the region offers it.
  // checkov:skip=CKV_AZURE_211: FC1 is a serverless plan billed per execution; checkov's list of production SKUs predates Flex Consumption.
  // checkov:skip=CKV_AZURE_212: Flex Consumption has no instance count on the plan; scale is per app (maximumInstanceCount, alwaysReady).
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: A static web app's linked backend must stay publicly reachable (no IP restrictions or private endpoints); its authentication (app/api-auth.bicep) admits only the static web app.
  // checkov:skip=CKV_AZURE_17: Client certificates would refuse the static web app's own proxy requests; callers are authenticated by the link (or by OIDC bearer tokens) instead.
  // checkov:skip=CKV_AZURE_212: Scaling to zero is the point of the plan; alwaysReadyInstanceCount keeps instances warm when a cold start is not acceptable.
  // checkov:skip=CKV_AZURE_213: /api/health probes ACS and Table Storage; a platform ping every minute would add dependency calls and cost, and with zero instances at rest there is nothing to route around.
  // checkov:skip=CKV_AZURE_78: FTP deployment is off through basic publishing credentials (ftpPublishing below); Flex Consumption refuses the ftpsState property itself (ARM error 51021).
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
      minTlsVersion: '1.2'
      http20Enabled: true
      // No CORS entry: browsers reach the API only through the static web app's /api route,
      // which is same-origin, so no origin (and never "*") needs to be allowed.
      appSettings: concat(hostSettings, appSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        // "http" is the group of all HTTP-triggered functions
        // (learn.microsoft.com/azure/azure-functions/flex-consumption-how-to#set-always-ready-instance-counts).
        alwaysReady: alwaysReadyInstanceCount > 0 ? [
          {
            name: 'http'
            instanceCount: alwaysReadyInstanceCount
          }
        ] : []
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
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
