// One secret in galsync's vault (a module so that each secret is declared unconditionally and scanned).
param vaultName string
param name string
@secure()
param value string
@description('MIME type of the value, e.g. text/plain or application/x-pkcs12 for a base64 PFX.')
param contentType string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  //checkov:skip=CKV_AZURE_41:These credentials expire where they are issued (the Entra client secret or certificate); a Key Vault expiry would make the app's reference fail on a date nobody chose, without renewing anything.
  parent: vault
  name: name
  properties: {
    value: value
    contentType: contentType
  }
}
