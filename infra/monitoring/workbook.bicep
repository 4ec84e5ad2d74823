// The galsync workbook (Azure portal > Monitor > Workbooks, or the Application Insights resource > Workbooks):
// runs over time by outcome, writes per run, failing mailboxes, Graph throttling, run durations, propagation
// p50/p95 (notification to the last write on the phones), the subscriptions runs and each profile's soonest
// subscription expiry, the webhook's answers and the queues' depth. Its queries (workbook.json) read the
// records galsync emits; a test keeps them in step with the code.
param location string
param tags object = {}
param applicationInsightsName string
param storageAccountName string
param displayName string = 'galsync'

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

var content = replace(replace(loadTextContent('workbook.json'), '{applicationInsightsId}', applicationInsights.id),
  '{queueServiceId}', '${storage.id}/queueServices/default')

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, 'galsync-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: toLower(applicationInsights.id)
    serializedData: content
  }
}

output name string = displayName
