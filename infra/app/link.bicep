// Makes the function app the static web app's /api backend ("bring your own functions",
// learn.microsoft.com/azure/static-web-apps/functions-bring-your-own). Deployed after the function
// app's authentication (app/api-auth.bicep), which already admits only this static web app.

param staticWebAppName string
@description('Resource id of the function app to link as the /api backend.')
param functionAppId string
@description('Region of the function app.')
param functionAppLocation string

resource staticWebApp 'Microsoft.Web/staticSites@2024-04-01' existing = {
  name: staticWebAppName
}

resource backend 'Microsoft.Web/staticSites/linkedBackends@2024-04-01' = {
  parent: staticWebApp
  name: 'api'
  properties: {
    backendResourceId: functionAppId
    region: functionAppLocation
  }
}
