// What an operator watches: the ACS resource's authentication (Identity API) logs and the
// function app's logs in the Log Analytics workspace, alert rules on the service's own metrics
// (shared/telemetry, README "Observability"), an optional e-mail action group, and a workbook
// with the same figures. Every resource here reads or annotates resources other modules create.

param location string
param tags object = {}

param logAnalyticsName string
param applicationInsightsName string
param communicationServiceName string
param functionAppName string

@description('Where alerts are e-mailed; empty: the alert rules still fire (portal, Azure Monitor), nobody is e-mailed.')
param alertEmail string = ''

@description('Alert when more than this percentage of the API requests in 15 minutes were answered 503.')
@minValue(1)
@maxValue(100)
param unavailablePercent int = 5

@description('...and at least this many requests arrived in those 15 minutes (a few 503s of a quiet hour are noise).')
@minValue(1)
param unavailableMinimumRequests int = 20

@description('Alert when ACS answered 429 more often than this in 15 minutes (the sweep paces itself on a few).')
@minValue(0)
param acsThrottledCalls int = 10

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: logAnalyticsName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource communicationService 'Microsoft.Communication/communicationServices@2025-05-01' existing = {
  name: communicationServiceName
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

// --- logs into the workspace ---

// AuthOperational is ACS's log of Identity and authentication API requests (table
// ACSAuthIncomingOperations: operation, result, caller identity, correlation id):
// https://learn.microsoft.com/azure/azure-monitor/reference/supported-logs/microsoft-communication-communicationservices-logs
resource acsDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: communicationService
  properties: {
    workspaceId: logAnalytics.id
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      {
        category: 'AuthOperational'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

// The function app's platform logs (FunctionAppLogs and whatever else the plan offers): the host's
// own view of each execution, kept next to the ACS logs for one query across both.
resource functionAppDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: functionApp
  properties: {
    workspaceId: logAnalytics.id
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

// --- alerts ---

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: 'ag-acs-tokens-${uniqueString(resourceGroup().id)}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'acstokens'
    enabled: true
    emailReceivers: [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var alertActions = {
  actionGroups: empty(alertEmail) ? [] : [
    actionGroup.id
  ]
}

// The function host's request telemetry (table requests) counts every API answer, whichever
// instance gave it; the service's own counter (acs_tokens.responses.unavailable) says which
// dependency caused them, in the workbook.
resource unavailableAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-acs-tokens-503-rate'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'ACS token service: too many 503 answers'
    severity: 1
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: 'requests | where operation_Name != "cleanup_deleted_users" | summarize total = count(), unavailable = countif(resultCode == "503") | where total >= ${unavailableMinimumRequests} | extend unavailablePercent = 100.0 * unavailable / total'
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'unavailablePercent'
          operator: 'GreaterThan'
          threshold: unavailablePercent
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: alertActions
  }
}

// The sweep logs what it could not finish (failed, guests_failed) and what it left for the next run
// (left, guests_left). Either means identities outlive their users or their guest tokens; a daily
// sweep is looked at over a day.
resource sweepAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-acs-tokens-sweep-unfinished'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'ACS token service: the sweep of deleted users left work undone'
    severity: 2
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT1H'
    windowSize: 'P1D'
    criteria: {
      allOf: [
        {
          query: 'customMetrics | where name == "acs_tokens.sweep.items" | where tostring(customDimensions.result) in ("failed", "left", "guests_failed", "guests_left") | where tostring(customDimensions.dry_run) != "True" | summarize unfinished = sum(valueSum)'
          timeAggregation: 'Total'
          metricMeasureColumn: 'unfinished'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    // One notice per day for one bad sweep, not one an hour.
    muteActionsDuration: 'PT23H'
    autoMitigate: false
    actions: alertActions
  }
}

resource throttlingAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-acs-tokens-acs-throttling'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'ACS token service: ACS is throttling the service'
    severity: 2
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          // Every 429 ACS answered, including attempts azure-core retried successfully.
          query: 'customMetrics | where name == "acs_tokens.dependency.responses" | where tostring(customDimensions.dependency) == "acs" and tostring(customDimensions.status_code) == "429" | summarize throttled = sum(valueSum)'
          timeAggregation: 'Total'
          metricMeasureColumn: 'throttled'
          operator: 'GreaterThan'
          threshold: acsThrottledCalls
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: alertActions
  }
}

// --- workbook: the README's figures on one page ---

var appInsightsQuery = {
  queryType: 0
  resourceType: 'microsoft.insights/components'
  timeContext: {
    durationMs: 86400000
  }
  size: 0
}

var workbookItems = [
  {
    type: 1
    name: 'intro'
    content: {
      json: '## ACS token service\nThe service\'s own metrics (README, "Observability") and ACS\'s authentication logs. Last 24 hours; change the time range on each panel.'
    }
  }
  {
    type: 3
    name: 'tokens'
    content: union(appInsightsQuery, {
      version: 'KqlItem/1.0'
      title: 'Tokens issued at ACS vs handed out again'
      query: 'customMetrics | where name in ("acs_tokens.tokens.issued", "acs_tokens.tokens.reused") | summarize tokens = sum(valueSum) by name, bin(timestamp, 5m) | render timechart'
      visualization: 'timechart'
    })
  }
  {
    type: 3
    name: 'identities'
    content: union(appInsightsQuery, {
      version: 'KqlItem/1.0'
      title: 'Identities created, deleted (by reason) and repaired'
      query: 'customMetrics | where name startswith "acs_tokens.identities." | extend what = strcat(replace_string(name, "acs_tokens.identities.", ""), iff(isempty(tostring(customDimensions.reason)), "", strcat(" (", tostring(customDimensions.reason), ")"))) | summarize identities = sum(valueSum) by what, bin(timestamp, 1h) | render columnchart'
      visualization: 'barchart'
    })
  }
  {
    type: 3
    name: 'acs-calls'
    content: union(appInsightsQuery, {
      version: 'KqlItem/1.0'
      title: 'ACS and Table Storage calls by operation and outcome (throttled = 429)'
      query: 'customMetrics | where name in ("acs_tokens.acs.call.duration", "acs_tokens.table.call.duration") | summarize calls = sum(valueCount), averageMs = round(1000.0 * sum(valueSum) / sum(valueCount), 1), maxMs = round(1000.0 * max(valueMax), 1) by dependency = iff(name == "acs_tokens.acs.call.duration", "acs", "tables"), operation = tostring(customDimensions.operation), outcome = tostring(customDimensions.outcome) | order by calls desc'
      visualization: 'table'
    })
  }
  {
    type: 3
    name: 'acs-throttling'
    content: union(appInsightsQuery, {
      version: 'KqlItem/1.0'
      title: 'ACS and Table Storage answers by status (retried attempts included; 429 = throttled)'
      query: 'customMetrics | where name == "acs_tokens.dependency.responses" | summarize answers = sum(valueSum) by answer = strcat(tostring(customDimensions.dependency), " ", tostring(customDimensions.status_code)), bin(timestamp, 5m) | render timechart'
      visualization: 'timechart'
    })
  }
  {
    type: 3
    name: 'unavailable'
    content: union(appInsightsQuery, {
      version: 'KqlItem/1.0'
      title: '503 answers by dependency'
      query: 'customMetrics | where name == "acs_tokens.responses.unavailable" | summarize answers = sum(valueSum) by dependency = tostring(customDimensions.dependency), bin(timestamp, 5m) | render timechart'
      visualization: 'timechart'
    })
  }
  {
    type: 3
    name: 'refused'
    content: union(appInsightsQuery, {
      version: 'KqlItem/1.0'
      title: 'Requests refused: rate limits and the access policy'
      query: 'customMetrics | where name == "acs_tokens.requests.refused" | summarize requests = sum(valueSum) by reason = tostring(customDimensions.reason), code = tostring(customDimensions.code), function = tostring(customDimensions.function) | order by requests desc'
      visualization: 'table'
    })
  }
  {
    type: 3
    name: 'sweep'
    content: union(appInsightsQuery, {
      version: 'KqlItem/1.0'
      title: 'Sweep: deleted users found, deleted, already gone, failed, left; expired guests deleted, failed, left'
      query: 'customMetrics | where name == "acs_tokens.sweep.items" | summarize items = sum(valueSum) by result = tostring(customDimensions.result), bin(timestamp, 1d) | render columnchart'
      visualization: 'barchart'
      timeContext: {
        durationMs: 604800000
      }
    })
  }
  {
    type: 3
    name: 'sweep-duration'
    content: union(appInsightsQuery, {
      version: 'KqlItem/1.0'
      title: 'How long each sweep ran (seconds)'
      query: 'customMetrics | where name == "acs_tokens.sweep.duration" | project timestamp, seconds = round(valueSum / valueCount, 1), dryRun = tostring(customDimensions.dry_run) | order by timestamp desc'
      visualization: 'table'
      timeContext: {
        durationMs: 604800000
      }
    })
  }
  {
    type: 3
    name: 'acs-auth-logs'
    content: {
      version: 'KqlItem/1.0'
      title: 'ACS authentication and Identity API requests (ACS\'s own log)'
      query: 'ACSAuthIncomingOperations | summarize requests = count() by OperationName, ResultSignature | order by requests desc'
      size: 0
      timeContext: {
        durationMs: 86400000
      }
      queryType: 0
      resourceType: 'microsoft.operationalinsights/workspaces'
      crossComponentResources: [
        logAnalytics.id
      ]
      visualization: 'table'
    }
  }
]

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, applicationInsights.id, 'acs-token-service-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'ACS token service'
    category: 'workbook'
    sourceId: applicationInsights.id
    serializedData: string({
      version: 'Notebook/1.0'
      items: workbookItems
      isLocked: false
      fallbackResourceIds: [
        applicationInsights.id
      ]
    })
  }
}

output workbookId string = workbook.id
output actionGroupId string = empty(alertEmail) ? '' : actionGroup.id
