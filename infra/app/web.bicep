// The static web app: serves web/dist, signs users in (Static Web Apps authentication) and
// forwards /api/* to the function app, its linked backend, with the signed-in user in the
// x-ms-client-principal header. Linking is what makes that header trustworthy: it configures
// App Service authentication on the function app so that only the static web app is let in.
// Linked backends need the Standard plan.

param name string
param location string
param tags object = {}

@description('Resource id of the function app to link as the /api backend.')
param functionAppId string
@description('Region of the function app.')
param functionAppLocation string

resource staticWebApp 'Microsoft.Web/staticSites@2024-04-01' = {
  name: name
  location: location
  // azd finds the static web app it deploys the `web` service to by this tag.
  tags: union(tags, {
    'azd-service-name': 'web'
  })
  sku: {
    name: 'Standard'
    tier: 'Standard'
  }
  properties: {
    // Pull-request environments can't use a linked backend; don't create any.
    stagingEnvironmentPolicy: 'Disabled'
    allowConfigFileUpdates: true
  }
}

resource backend 'Microsoft.Web/staticSites/linkedBackends@2024-04-01' = {
  parent: staticWebApp
  name: 'api'
  properties: {
    backendResourceId: functionAppId
    region: functionAppLocation
  }
}

output name string = staticWebApp.name
output uri string = 'https://${staticWebApp.properties.defaultHostname}'
