// The vault for galsync's secrets: RBAC mode (no access policies), soft delete and purge protection.
// The app reads them through Key Vault references with its managed identity (Key Vault Secrets User).
// Secrets written here come from secure parameters; an empty parameter leaves the vault's secret as it is,
// so a secret set with `az keyvault secret set` survives the next `azd provision`. The webhook key
// (galsync-webhook-key) is written by infra/hooks/postdeploy.sh, which creates the function key it copies.
param name string
param location string
param tags object = {}
param softDeleteRetentionInDays int = 7

@secure()
param clientSecret string = ''
@secure()
param certificate string = ''
@secure()
param certificatePassword string = ''

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  //checkov:skip=CKV_AZURE_109:No virtual network here: the Flex Consumption app resolves Key Vault references over the public endpoint from outbound addresses that are not fixed, so an IP firewall cannot admit it; every request needs an Entra token authorized by Azure RBAC.
  //checkov:skip=CKV_AZURE_189:Same reason: public network access stays on for a Flex Consumption app without VNet integration; only Entra-authorized requests with a data-plane role succeed.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

module clientSecretEntry 'keyvault-secret.bicep' = if (!empty(clientSecret)) {
  name: 'secret-client-secret'
  params: {
    vaultName: vault.name
    name: 'galsync-client-secret'
    value: clientSecret
    contentType: 'text/plain'
  }
}

module certificateEntry 'keyvault-secret.bicep' = if (!empty(certificate)) {
  name: 'secret-certificate'
  params: {
    vaultName: vault.name
    name: 'galsync-certificate'
    value: certificate
    contentType: 'application/x-pkcs12'
  }
}

module certificatePasswordEntry 'keyvault-secret.bicep' = if (!empty(certificatePassword)) {
  name: 'secret-certificate-password'
  params: {
    vaultName: vault.name
    name: 'galsync-certificate-password'
    value: certificatePassword
    contentType: 'text/plain'
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
