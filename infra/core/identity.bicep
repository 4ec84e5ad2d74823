// The one identity galsync runs as: host storage, the deployment package, telemetry, Key Vault references
// and (after infra/grant-graph-permissions.sh) Microsoft Graph all accept its tokens, so no key is stored.
param name string
param location string
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
