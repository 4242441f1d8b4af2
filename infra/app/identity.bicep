// The function app's user-assigned managed identity. User-assigned (not system-assigned) so the
// role assignments can be made before the app exists: the host then starts with its storage,
// App Insights and ACS permissions already in place instead of failing its first minutes.

param name string
param location string
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
