// The static web app: serves web/dist, signs users in (Static Web Apps authentication) and
// forwards /api/* to the function app, its linked backend (app/link.bicep), with the signed-in
// user in the x-ms-client-principal header. Linked backends need the Standard plan
// (learn.microsoft.com/azure/static-web-apps/functions-bring-your-own).

param name string
param location string
param tags object = {}

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

output name string = staticWebApp.name
// The function app's authentication names the static web app by this host name (app/api-auth.bicep).
output defaultHostname string = staticWebApp.properties.defaultHostname
output uri string = 'https://${staticWebApp.properties.defaultHostname}'
