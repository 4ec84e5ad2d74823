// Alerts on by default: an action group that e-mails the admin, and one scheduled log query rule per way
// galsync can fail quietly. The queries (queries/*.kql) read the records galsync emits (the galsync.run
// record of sync_core/service/telemetry.py, a few log lines, the functions' requests); a test keeps them in
// step with the code. Each alert says what to run or where to look.
param location string
param tags object = {}
param applicationInsightsName string
@description('Where alerts are e-mailed (GALSYNC_ALERT_EMAIL).')
param alertEmail string
@description('Minutes without a successful sync of a profile before an alert: twice the sync schedule.')
param noSyncAlertMinutes int = 30
@description('Name of the workbook, for the alerts\' text.')
param workbookName string

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-galsync-${uniqueString(resourceGroup().id)}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'galsync'
    enabled: true
    emailReceivers: [
      {
        name: 'admin'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var look = 'Run `galsync doctor`, and open the workbook "${workbookName}" (Azure portal > Monitor > Workbooks) for the runs and failing mailboxes.'

var rules = [
  {
    name: 'failed-runs'
    title: 'galsync: a profile has been failing for more than an hour'
    text: 'Sync, push or reconcile runs of a profile have failed or written only in part for over an hour, with no successful run since. ${look} `galsync status` lists the last runs and their errors.'
    severity: 1
    frequency: 'PT15M'
    window: 'PT6H'
    query: loadTextContent('queries/failed-runs.kql')
  }
  {
    name: 'no-sync'
    title: 'galsync: no successful sync of a profile'
    text: 'A profile has had no successful sync for ${noSyncAlertMinutes} minutes (twice the sync schedule): phones stop getting changes. ${look}'
    severity: 1
    frequency: 'PT15M'
    window: 'P1D'
    query: replace(loadTextContent('queries/no-sync.kql'), '{minutes}', string(noSyncAlertMinutes))
  }
  {
    name: 'poison'
    title: 'galsync: work was given up (poison message)'
    text: 'A queue message failed every try, or can never work, and was recorded as poison: that work is not done. `galsync status` and `galsync doctor` show the poison records and their errors; the workbook shows the runs around it.'
    severity: 2
    frequency: 'PT15M'
    window: 'PT15M'
    query: loadTextContent('queries/poison.kql')
  }
  {
    name: 'subscriptions'
    title: 'galsync: Graph subscriptions are not in place'
    text: 'The last subscriptions run could not create or renew every Graph subscription (or its validation failed): changes reach phones only with the safety-net sync. Run `galsync doctor` and `galsync subscriptions list`; check that the webhook answers (the workbook\'s webhook chart).'
    severity: 2
    frequency: 'PT1H'
    window: 'PT9H'
    query: loadTextContent('queries/subscriptions.kql')
  }
  {
    name: 'webhook'
    title: 'galsync: the webhook answered 5xx or slower than 3 s'
    text: 'Graph retries 5xx answers for hours and slows or drops an endpoint that answers slowly. Look at the function app\'s failures in Application Insights and the workbook\'s webhook chart; a cold start after an idle spell is avoided with `azd env set AZURE_HTTP_ALWAYS_READY 1` and `azd provision`. Run `galsync doctor`.'
    severity: 2
    frequency: 'PT5M'
    window: 'PT15M'
    query: loadTextContent('queries/webhook.kql')
  }
  {
    name: 'resyncs'
    title: 'galsync: delta tokens keep expiring (repeated full reads)'
    text: 'galsync read sources or folders in full more than 3 times in 6 hours because their delta tokens expired: slow, and costly in Graph requests. ${look}'
    severity: 3
    frequency: 'PT1H'
    window: 'PT6H'
    query: loadTextContent('queries/resyncs.kql')
  }
]

resource alerts 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for rule in rules: {
  name: 'alert-galsync-${rule.name}-${uniqueString(resourceGroup().id)}'
  location: location
  tags: tags
  properties: {
    displayName: rule.title
    description: rule.text
    severity: rule.severity
    enabled: true
    evaluationFrequency: rule.frequency
    windowSize: rule.window
    scopes: [
      applicationInsights.id
    ]
    criteria: {
      allOf: [
        {
          query: rule.query
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
      customProperties: {
        whatToDo: rule.text
      }
    }
  }
}]

output actionGroupName string = actionGroup.name
