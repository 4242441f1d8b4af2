// One storage account for three things: the Functions host's own storage (AzureWebJobsStorage),
// the Flex Consumption deployment package container, and the table mapping app users to ACS
// identities. Shared keys are off, so every caller (host, deployment, app code) authenticates
// with Entra ID and is limited by the roles in rbac.bicep.

param name string
param location string
param tags object = {}

@description('Blob container the Flex Consumption plan deploys the app package into.')
param deploymentContainerName string

@description('Table holding the app user -> ACS identity mappings (3-63 letters and digits, starting with a letter).')
@minLength(3)
@maxLength(63)
param tableName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Flex Consumption without VNet integration reaches storage over its public endpoint; access is by Entra ID only (shared keys disabled), never anonymous.
  // checkov:skip=CKV_AZURE_59: Same reason: public network access is needed by the Flex Consumption host without a VNet; shared keys are disabled and every role is scoped.
  // checkov:skip=CKV_AZURE_206: Locally redundant storage keeps the cost at rest minimal; choose ZRS/GRS here when losing the mapping table to a datacenter outage is not acceptable.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource identityTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: tableName
}

// The table maps every app user to their ACS identity: without it the identities are orphaned.
// A CanNotDelete lock refuses deleting the account; `azd down` lifts it first only when told to
// (infra/hooks/release-locks.sh; see the README).
resource deleteLock 'Microsoft.Authorization/locks@2020-05-01' = {
  name: 'keep-identity-mappings'
  scope: storage
  properties: {
    level: 'CanNotDelete'
    notes: 'Holds the table mapping users to their ACS identities. See the README ("Deploy to Azure") before removing the lock.'
  }
}

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
output deploymentContainerName string = deploymentContainer.name
output tableName string = identityTable.name
output lockId string = deleteLock.id
