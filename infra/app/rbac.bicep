// Every role assignment of the deployment, in one place, each at the narrowest scope that works.
// Names are guid(scope, principal, role), so re-running a deployment updates rather than
// duplicates them, and two different grants can never collide.

param storageAccountName string
param tableName string
param applicationInsightsName string
param communicationServiceName string

@description('Principal (object) id of the user-assigned identity the function app runs as.')
param appPrincipalId string

@description('Optional: the deploying user, given the same storage data roles to inspect data and run the app locally against Azure. Empty to skip.')
param userPrincipalId string = ''

@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param userPrincipalType string = 'User'

// Built-in role definition ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'
// ACS authorizes Identity API calls made with an Entra token by Azure RBAC on the resource. Its
// documentation grants Contributor for this (quickstarts/identity/service-principal: "az ad sp
// create-for-rbac --role Contributor"). No narrower built-in role is documented to cover the
// Identity API, and the Microsoft.Communication operations list documents no data actions for it
// (learn.microsoft.com/azure/role-based-access-control/permissions/integration#microsoftcommunication),
// so a custom role would rest on guessed action names. Contributor is therefore granted on this
// one ACS resource only, nothing above it. What Contributor could do beyond the Identity API is
// bounded: it cannot delete the resource while its CanNotDelete lock stands (acs.bicep), because
// removing a lock needs Microsoft.Authorization/locks/delete, which Contributor does not have.
var contributor = 'b24988ac-6180-42a0-ab88-20f7382dd24c'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource identityTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = {
  parent: tableService
  name: tableName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource communicationService 'Microsoft.Communication/communicationServices@2025-05-01' existing = {
  name: communicationServiceName
}

// --- the function app's identity ---

// The app reads and writes the identity mappings: data access to that one table only.
resource appTableData 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(identityTable.id, appPrincipalId, storageTableDataContributor)
  scope: identityTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The Functions host keeps its keys, timer schedule and locks in blobs, and Flex Consumption
// reads the deployment package from a blob container. Scope: the account, not the deployment
// container, because the host's own storage needs Storage Blob Data Owner on the account: it
// creates and uses its containers (azure-webjobs-hosts, azure-webjobs-secrets) itself
// (learn.microsoft.com/azure/azure-functions/functions-reference#connecting-to-host-storage-with-an-identity).
// That grant already covers the deployment container, so a second, container-scoped one would
// narrow nothing. Narrowing would need the host's containers created here and the role scoped to
// each of the three; the platform documents only the account-level grant, so it stays.
resource appBlobData 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The Functions host's queue access for AzureWebJobsStorage.
resource appQueueData 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Telemetry ingestion with Entra ID (the component has local authentication disabled).
resource appTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, appPrincipalId, monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Create, issue, revoke and delete ACS identities through the Identity API (see the note on
// `contributor` above for why this role).
resource appCommunication 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(communicationService.id, appPrincipalId, contributor)
  scope: communicationService
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', contributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// --- the deploying user (optional) ---

resource userTableData 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(userPrincipalId)) {
  name: guid(identityTable.id, userPrincipalId, storageTableDataContributor)
  scope: identityTable
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

resource userBlobData 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(userPrincipalId)) {
  name: guid(storage.id, userPrincipalId, storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

resource userQueueData 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(userPrincipalId)) {
  name: guid(storage.id, userPrincipalId, storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}
