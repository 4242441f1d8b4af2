// The Azure Communication Services resource whose Identity API the function app calls.
// Local (access key) authentication is disabled: the only way in is an Entra token, i.e. the
// function app's managed identity with the role granted in rbac.bicep.

param name string
param tags object = {}

@description('Where ACS stores its data at rest (for example "United States", "Europe", "UK").')
param dataLocation string

resource communicationService 'Microsoft.Communication/communicationServices@2025-05-01' = {
  name: name
  // Communication Services resources are global; dataLocation decides where data rests.
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
    disableLocalAuth: true
  }
}

// Deleting this resource deletes every ACS identity, i.e. every user's identity: a CanNotDelete
// lock refuses that (learn.microsoft.com/azure/azure-resource-manager/management/lock-resources).
// `azd down` lifts it first only when told to (infra/hooks/release-locks.sh; see the README).
resource deleteLock 'Microsoft.Authorization/locks@2020-05-01' = {
  name: 'keep-acs-identities'
  scope: communicationService
  properties: {
    level: 'CanNotDelete'
    notes: 'Deleting this resource deletes every user\'s ACS identity. See the README ("Deploy to Azure") before removing the lock.'
  }
}

output name string = communicationService.name
output id string = communicationService.id
output endpoint string = 'https://${communicationService.properties.hostName}'
output lockId string = deleteLock.id
