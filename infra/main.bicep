// galsync in the customer's subscription: one resource group holding a Flex Consumption function app, its
// storage, monitoring and Key Vault, all reached with one user-assigned managed identity (no keys anywhere).
// `azd up` fills the parameters from infra/main.parameters.json; every GALSYNC_* parameter there can be set
// with `azd env set GALSYNC_... value` and becomes the app setting of the same name.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; with the subscription and location it seeds every resource name.')
param environmentName string

@minLength(1)
@description('Region of every resource; it must offer the Flex Consumption plan (az functionapp list-flexconsumption-locations).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of the person (or pipeline) running azd: gets Key Vault Secrets Officer on the vault to store the credentials and the webhook key. Empty: no role.')
param principalId string = ''

@description('Most on-demand instances of each function group (the HTTP pair, each queue trigger, each timer); Flex Consumption allows 1 to 1000. Always-ready instances do not count. The push-targets group is the one that grows (one instance per 2 waiting messages, host.json batchSize). 10 instances of 41 calls reach Graph\'s app-wide rate; more would only share the same rate (docs/performance.md, "The fleet on Flex Consumption").')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 10

@description('Graph $batch calls the whole fleet may have in flight: each instance gets this divided by maximumInstanceCount as GALSYNC_MAX_CONCURRENCY, so more instances share the budget instead of multiplying it; a push message gets that divided by the 10 messages an instance runs as its mailboxes (GALSYNC_TARGETS_PER_MESSAGE, 4 at the defaults) and 3,000 writes per mailbox (GALSYNC_WRITES_PER_MESSAGE, 12,000), so it ends in under 2 minutes at 100 ms. 418 calls of 20 requests send Graph\'s app-wide rate (130,000 requests per 10 s) when a request takes 100 ms; where requests are faster the same calls ask more (3.3 x the rate at 30 ms, answered with 429s): use 126 there, with maximumInstanceCount 3 so that messages keep 4 mailboxes.')
@minValue(1)
param fleetCallsInFlight int = 418

@description('Always-ready instances for the HTTP functions (the webhook Graph calls). 0: the webhook starts on demand, and the first notification after an idle spell waits for a cold start (a few seconds; Graph allows 3 s for notifications and 10 s for the validation request). 1 keeps one instance warm, billed whether it works or not (see the README, "Cost").')
@minValue(0)
@maxValue(10)
param httpAlwaysReadyInstances int = 0

@description('Memory of one instance in MB.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Replication of the storage account that holds galsync\'s state. Zone- and geo-redundant by default; in a region without availability zones use Standard_GRS.')
@allowed(['Standard_GZRS', 'Standard_RAGZRS', 'Standard_GRS', 'Standard_RAGRS'])
param storageSkuName string = 'Standard_GZRS'

@description('Days a deleted Key Vault stays recoverable (purge protection keeps it that long).')
@minValue(7)
@maxValue(90)
param keyVaultSoftDeleteRetentionDays int = 7

@description('E-mail address the alerts go to (azd env set GALSYNC_ALERT_EMAIL admin@contoso.com); azd asks for it when it is not set. Not an app setting: galsync never reads it.')
@minLength(3)
param alertEmail string

@description('Minutes without a successful sync of a profile before the alert: twice the sync schedule (GALSYNC_SYNC_SCHEDULE, every 15 minutes by default).')
@minValue(10)
param noSyncAlertMinutes int = 30

@description('Days Log Analytics keeps logs.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

// ---- galsync settings (sync_core/settings.py); defaults are the settings' defaults ----

@description('GALSYNC_CONFIG_PATH: profiles file (TOML) shipped in the app package, relative to the app root.')
param configPath string = 'galsync.toml'

@description('GALSYNC_TENANT_ID: Entra tenant galsync syncs; empty means the tenant of this subscription.')
param tenantId string = ''

@description('GALSYNC_AUTH_MODE: managed_identity (keyless, recommended), client_secret or certificate.')
@allowed(['managed_identity', 'client_secret', 'certificate'])
param authMode string = 'managed_identity'

@description('GALSYNC_CLIENT_ID: app registration client id (client_secret and certificate modes).')
param clientId string = ''

@secure()
@description('Client secret (client_secret mode), stored in Key Vault as galsync-client-secret. Empty: leave the vault as it is.')
param clientSecret string = ''

@secure()
@description('Certificate as base64 PFX (certificate mode), stored in Key Vault as galsync-certificate. Empty: leave the vault as it is.')
param certificate string = ''

@secure()
@description('Password of the PFX, stored in Key Vault as galsync-certificate-password. Empty: none.')
param certificatePassword string = ''

@description('GALSYNC_GRAPH_CLOUD: national cloud of the tenant.')
@allowed(['global', 'usgov', 'usgovdod', 'china'])
param graphCloud string = 'global'

@description('GALSYNC_AUTHORITY_HOST: override of the cloud\'s Entra authority host; empty for the cloud\'s own.')
param authorityHost string = ''

@description('GALSYNC_GRAPH_BASE_URL: override of the cloud\'s Graph root; empty for the cloud\'s own.')
param graphBaseUrl string = ''

@description('GALSYNC_RETRY_MAX_ATTEMPTS: most attempts of one Graph request.')
param retryMaxAttempts string = '6'

@description('GALSYNC_RETRY_MAX_SECONDS: most seconds spent retrying one Graph request.')
param retryMaxSeconds string = '120'

@description('GALSYNC_HTTP_TIMEOUT_SECONDS: read timeout of one Graph request.')
param httpTimeoutSeconds string = '30'

@description('GALSYNC_TABLE_PREFIX: prefix of the state tables galsync creates in the storage account.')
param tablePrefix string = 'galsync'

@description('GALSYNC_SYNC_SCHEDULE: safety-net sync (NCRONTAB).')
param syncSchedule string = '0 */15 * * * *'

@description('GALSYNC_RECONCILE_SCHEDULE: nightly reconcile (NCRONTAB, UTC).')
param reconcileSchedule string = '0 0 2 * * *'

@description('GALSYNC_SUBSCRIPTIONS_SCHEDULE: create, renew and clean Graph subscriptions (NCRONTAB).')
param subscriptionsSchedule string = '0 30 */4 * * *'

@description('GALSYNC_RECONCILE_TARGETS_PER_MESSAGE: target mailboxes per reconcile-targets queue message (the nightly reconcile\'s groups).')
param reconcileTargetsPerMessage string = '25'

@description('GALSYNC_LOG_LEVEL: level of galsync\'s own loggers.')
@allowed(['DEBUG', 'INFO', 'WARNING', 'ERROR'])
param logLevel string = 'INFO'

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var functionAppName = 'func-galsync-${resourceToken}'
// Blob container Flex Consumption deploys the app package from.
var deploymentContainerName = 'app-package-${resourceToken}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'core/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-galsync-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'core/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'stgalsync${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    skuName: storageSkuName
  }
}

module monitoring 'core/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-galsync-${resourceToken}'
    applicationInsightsName: 'appi-galsync-${resourceToken}'
    location: location
    tags: tags
    retentionInDays: logRetentionDays
  }
}

module workbook 'monitoring/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    location: location
    tags: tags
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    storageAccountName: storage.outputs.name
  }
}

module alerts 'monitoring/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    alertEmail: alertEmail
    noSyncAlertMinutes: noSyncAlertMinutes
    workbookName: workbook.outputs.name
  }
}

module keyVault 'core/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-galsync-${take(resourceToken, 11)}'
    location: location
    tags: tags
    softDeleteRetentionInDays: keyVaultSoftDeleteRetentionDays
    clientSecret: clientSecret
    certificate: certificate
    certificatePassword: certificatePassword
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    identityPrincipalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultName: keyVault.outputs.name
    deployerPrincipalId: principalId
  }
}

module api 'app/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-galsync-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultUri: keyVault.outputs.uri
    maximumInstanceCount: maximumInstanceCount
    httpAlwaysReadyInstances: httpAlwaysReadyInstances
    instanceMemoryMB: instanceMemoryMB
    configPath: configPath
    tenantId: empty(tenantId) ? tenant().tenantId : tenantId
    authMode: authMode
    clientId: clientId
    usesCertificatePassword: !empty(certificatePassword)
    graphCloud: graphCloud
    authorityHost: authorityHost
    graphBaseUrl: graphBaseUrl
    fleetCallsInFlight: fleetCallsInFlight
    retryMaxAttempts: retryMaxAttempts
    retryMaxSeconds: retryMaxSeconds
    httpTimeoutSeconds: httpTimeoutSeconds
    tablePrefix: tablePrefix
    syncSchedule: syncSchedule
    reconcileSchedule: reconcileSchedule
    subscriptionsSchedule: subscriptionsSchedule
    reconcileTargetsPerMessage: reconcileTargetsPerMessage
    logLevel: logLevel
  }
  // The app's first start reads storage, Key Vault and App Insights with the identity: grant first.
  dependsOn: [
    rbac
  ]
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
// Graph calls these with ?code=<function key>; the key lives in Key Vault (galsync-webhook-key), never here.
output GALSYNC_NOTIFICATION_URL string = '${api.outputs.baseUrl}/api/notifications'
output GALSYNC_LIFECYCLE_URL string = '${api.outputs.baseUrl}/api/lifecycle'
