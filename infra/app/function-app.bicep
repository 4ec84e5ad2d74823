// The galsync function app on a Flex Consumption (FC1) Linux plan, Python 3.11, running as the user-assigned
// identity. Its app settings are exactly the settings galsync reads (sync_core/settings.py) plus the
// platform settings for identity-based host storage and Entra-authenticated telemetry; a test checks this.
param name string
param planName string
param location string
param tags object = {}
param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string
@description('Key Vault URI, ending in a slash.')
param keyVaultUri string
param maximumInstanceCount int = 10
@description('Graph $batch calls in flight for the whole fleet, shared out among maximumInstanceCount instances.')
param fleetCallsInFlight int = 418
@description('Always-ready instances of the HTTP function group (Flex Consumption names the group \'http\').')
param httpAlwaysReadyInstances int = 0
param instanceMemoryMB int = 2048

param configPath string
param tenantId string
param authMode string
param clientId string
param usesCertificatePassword bool
param graphCloud string
param authorityHost string
param graphBaseUrl string
param retryMaxAttempts string
param retryMaxSeconds string
param httpTimeoutSeconds string
param tablePrefix string
param syncSchedule string
param reconcileSchedule string
param subscriptionsSchedule string
param reconcileTargetsPerMessage string
param logLevel string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  //checkov:skip=CKV_AZURE_225:Zone redundancy of a Flex Consumption plan is offered in some regions only and would make `azd up` fail elsewhere; galsync's work is queued in zone-redundant storage and retried, so a zone loss delays it rather than losing it.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

var tableEndpoint = storage.properties.primaryEndpoints.table
// Push messages one instance runs at once: host.json's batchSize + newBatchThreshold (a test checks).
var messagesPerInstance = 10
// The fleet's budget shared out: at most maximumInstanceCount push instances, so the fleet never keeps more
// than fleetCallsInFlight calls in flight, however far it scales (docs/performance.md).
var callsPerInstance = max(1, fleetCallsInFlight / maximumInstanceCount)
// A push message keeps one call in flight per mailbox, so an instance's messages x their mailboxes use its
// calls (41 / 10 = 4 at the defaults) and none waits for another's; 3,000 writes a mailbox keep a message
// under 2 minutes at 100 ms per request (MAILBOX_WRITES_PER_MESSAGE in sync_core/settings.py; a test checks).
var targetsPerMessage = max(1, callsPerInstance / messagesPerInstance)
var mailboxWritesPerMessage = 3000
var secretsUri = '${keyVaultUri}secrets'

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  //checkov:skip=CKV_AZURE_17:Incoming client certificates would be demanded of Microsoft Graph, which sends none when it posts change notifications; those requests carry a function key and clientState instead.
  //checkov:skip=CKV_AZURE_222:Microsoft Graph must reach /api/notifications and /api/lifecycle from the internet; every other trigger is a queue or timer, and the HTTP routes require a function key.
  //checkov:skip=CKV_AZURE_213:Flex Consumption replaces unhealthy instances itself and scales on-demand instances to zero; a health check path would only keep them awake. The webhook is kept warm with always-ready instances (httpAlwaysReadyInstances) instead.
  //checkov:skip=CKV_AZURE_212:Flex Consumption sets its minimum with always-ready instances per function group, not with the numberOfWorkers this check reads; httpAlwaysReadyInstances sets it for the webhook (0 by default), and queue and timer work waits safely in storage.
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
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
    clientCertEnabled: false
    keyVaultReferenceIdentity: identityId
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
      ftpsState: 'Disabled'
      remoteDebuggingEnabled: false
      cors: {
        allowedOrigins: []
      }
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        alwaysReady: (httpAlwaysReadyInstances > 0) ? [
          {
            name: 'http'
            instanceCount: httpAlwaysReadyInstances
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

// Keyless deployment: azd deploys with an Entra token, so basic (publishing profile) credentials stay off.
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  //checkov:skip=CKV_AZURE_13:App Service Authentication would demand an Entra token of Microsoft Graph's notification requests, which carry none; the routes use a function key and clientState.
  //checkov:skip=CKV_AZURE_56:Same reason as CKV_AZURE_13: Graph change notifications cannot pass App Service Authentication.
  //checkov:skip=CKV_AZURE_222:Microsoft Graph must reach the notification routes from the internet (see the site above); this resource holds app settings only.
  //checkov:skip=CKV_AZURE_63:App Service HTTP logs are a 'web' config feature that Flex Consumption does not offer; requests and logs go to Application Insights. This resource holds app settings only.
  //checkov:skip=CKV_AZURE_65:Detailed error pages are a 'web' config feature that Flex Consumption does not offer; errors go to Application Insights. This resource holds app settings only.
  //checkov:skip=CKV_AZURE_66:Failed request tracing is a 'web' config feature that Flex Consumption does not offer; failed requests are in Application Insights. This resource holds app settings only.
  //checkov:skip=CKV_AZURE_80:A Python app: no .NET Framework version to set.
  //checkov:skip=CKV_AZURE_88:Flex Consumption has no Azure Files content share: the package is deployed to a blob container with the managed identity, and the account has shared key access off, which Azure Files mounts would need.
  parent: functionApp
  name: 'appsettings'
  properties: {
    // Platform: identity-based host storage (no connection string, no key).
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
    AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
    AzureWebJobsStorage__tableServiceUri: tableEndpoint
    // Platform: telemetry with Entra auth; the connection string only locates the resource (local auth is off).
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    // Platform: the Python worker runs each (synchronous) invocation on a thread of this pool; its own default
    // follows the CPU count (5 threads on a one-core instance), which would leave messages the host fetched
    // waiting. host.json's batchSize + newBatchThreshold: every message an instance holds runs.
    PYTHON_THREADPOOL_THREAD_COUNT: string(messagesPerInstance)

    // galsync (sync_core/settings.py), in its order.
    GALSYNC_CONFIG_PATH: configPath
    GALSYNC_TENANT_ID: tenantId
    GALSYNC_AUTH_MODE: authMode
    GALSYNC_CLIENT_ID: (authMode == 'managed_identity') ? '' : clientId
    GALSYNC_CLIENT_SECRET: (authMode == 'client_secret') ? '@Microsoft.KeyVault(SecretUri=${secretsUri}/galsync-client-secret/)' : ''
    GALSYNC_CERTIFICATE: (authMode == 'certificate') ? '@Microsoft.KeyVault(SecretUri=${secretsUri}/galsync-certificate/)' : ''
    GALSYNC_CERTIFICATE_PASSWORD: ((authMode == 'certificate') && usesCertificatePassword) ? '@Microsoft.KeyVault(SecretUri=${secretsUri}/galsync-certificate-password/)' : ''
    GALSYNC_MANAGED_IDENTITY_CLIENT_ID: identityClientId
    GALSYNC_GRAPH_CLOUD: graphCloud
    GALSYNC_AUTHORITY_HOST: authorityHost
    GALSYNC_GRAPH_BASE_URL: graphBaseUrl
    // Only the local Graph emulator needs an extra CA.
    GALSYNC_GRAPH_CA_BUNDLE: ''
    GALSYNC_MAX_CONCURRENCY: string(callsPerInstance)
    GALSYNC_RETRY_MAX_ATTEMPTS: retryMaxAttempts
    GALSYNC_RETRY_MAX_SECONDS: retryMaxSeconds
    GALSYNC_HTTP_TIMEOUT_SECONDS: httpTimeoutSeconds
    GALSYNC_STATE: 'table:'
    GALSYNC_TABLES_URI: endsWith(tableEndpoint, '/') ? substring(tableEndpoint, 0, length(tableEndpoint) - 1) : tableEndpoint
    // Keyless in Azure: the state store uses the managed identity, never a connection string.
    GALSYNC_STORAGE_CONNECTION_STRING: ''
    GALSYNC_TABLE_PREFIX: tablePrefix
    GALSYNC_SYNC_SCHEDULE: syncSchedule
    GALSYNC_RECONCILE_SCHEDULE: reconcileSchedule
    GALSYNC_SUBSCRIPTIONS_SCHEDULE: subscriptionsSchedule
    GALSYNC_WEBHOOK_BASE_URL: 'https://${functionApp.properties.defaultHostName}'
    // The function key Graph appends to the notification URLs; stored by infra/hooks/postdeploy.sh.
    GALSYNC_WEBHOOK_KEY: '@Microsoft.KeyVault(SecretUri=${secretsUri}/galsync-webhook-key/)'
    GALSYNC_TARGETS_PER_MESSAGE: string(targetsPerMessage)
    GALSYNC_WRITES_PER_MESSAGE: string(targetsPerMessage * mailboxWritesPerMessage)
    GALSYNC_RECONCILE_TARGETS_PER_MESSAGE: reconcileTargetsPerMessage
    GALSYNC_LOG_LEVEL: logLevel
  }
}

output name string = functionApp.name
output baseUrl string = 'https://${functionApp.properties.defaultHostName}'
