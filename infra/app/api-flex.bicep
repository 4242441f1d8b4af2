// The token service: a Python 3.11 function app on the Flex Consumption plan (Linux, scale to
// zero, billed per execution). It holds no secret: the host's storage, the deployment package,
// Table Storage, ACS and Application Insights are all reached with the user-assigned identity.
//
// appSettings lists exactly the settings the code reads (shared/settings.py SETTING_NAMES, less
// the two connection strings that exist only for local emulators) plus the settings the
// Functions host itself reads. tests/infra/test_infra.py keeps both sides equal.

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

// What the code reads (see shared/settings.py for the meaning and validation of each).
param acsEndpoint string
param tablesEndpoint string
param identityTableName string
@allowed([
  'true'
  'false'
])
param trustClientPrincipal string
param oidcIssuer string
param oidcAudience string
param oidcAlgorithms string
param acsAllowedScopes string
param acsDefaultScopes string
param tokenDefaultMinutes int
param tokenReuseSeconds int
param tokenRequestsPerMinute int
param dependencyTimeoutSeconds int
param cleanupSchedule string
@allowed([
  'true'
  'false'
])
param cleanupDryRun string
param cleanupInactiveDays int
param cleanupTimeBudgetSeconds int
param cleanupConcurrency int
param cleanupTombstoneRetentionHours int

@description('Upper bound on instances: caps the bill under a flood. 40 is the lowest Flex Consumption allows.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy for Flex Consumption exists only in some regions; leaving it off keeps every Flex region deployable. Turn on zoneRedundant where the region offers it.
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
  // checkov:skip=CKV_AZURE_222: A static web app's linked backend must stay publicly reachable (no IP restrictions or private endpoints); the link's App Service authentication admits only the static web app.
  // checkov:skip=CKV_AZURE_17: Client certificates would refuse the static web app's own proxy requests; callers are authenticated by the link (or by OIDC bearer tokens) instead.
  // checkov:skip=CKV_AZURE_212: Scaling to zero is the point of the plan: an always-ready instance would be billed around the clock for an idle token service.
  // checkov:skip=CKV_AZURE_213: /api/health probes ACS and Table Storage; a platform ping every minute would add dependency calls and cost, and with zero instances at rest there is nothing to route around.
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
      ftpsState: 'Disabled'
      http20Enabled: true
      // No CORS entry: browsers reach the API only through the static web app's /api route,
      // which is same-origin, so no origin (and never "*") needs to be allowed.
      appSettings: [
        // --- read by the Functions host ---
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
        // --- read by the app (shared/settings.py) ---
        {
          name: 'ACS_ENDPOINT'
          value: acsEndpoint
        }
        {
          name: 'TABLES_ENDPOINT'
          value: tablesEndpoint
        }
        {
          name: 'IDENTITY_TABLE_NAME'
          value: identityTableName
        }
        {
          name: 'AZURE_CLIENT_ID'
          value: identityClientId
        }
        {
          // "true" only because the app is the static web app's linked backend: linking puts
          // App Service authentication in front of the app so that only the static web app,
          // which sets x-ms-client-principal itself, gets through. See the README's
          // "Deploy to Azure" section for the check that proves it after each deployment.
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
