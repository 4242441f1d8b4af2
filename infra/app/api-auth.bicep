// The function app's authentication (App Service "Easy Auth", configuration version 2), declared
// so that every provision re-applies it: the one thing that makes trusting x-ms-client-principal
// safe must not exist only as a side effect of linking.
//
// What it says: every request must be authenticated (requireAuthentication), an unauthenticated
// one gets 401 (Return401, no redirect to a sign-in page), and the only identity provider is the
// static web app (azureStaticWebApps). A PUT of authsettingsV2 replaces the whole configuration,
// so no other provider survives it.
//
// Not fighting the link: the Static Web Apps documentation says linking gives the static web app
// exclusive access "if authentication and authorization policies aren't already set up", and that
// a linked app's own authentication must be configuration version 2
// (learn.microsoft.com/azure/static-web-apps/functions-bring-your-own#security-constraints). So
// this is version 2 and names the static web app the way the link does: the azureStaticWebApps
// provider registered with the static web app's default host name as its client id (the value the
// portal shows for the "Azure Static Web Apps (Linked)" provider, and that public Bicep templates
// set; the provider's shape is Microsoft.Web/sites/config authsettingsV2
// identityProviders.azureStaticWebApps in the ARM reference). The link (app/link.bicep) is
// deployed after this module, so whatever it writes is the last word on each provision.
// infra/hooks/verify-direct-access.sh then proves from outside that direct callers are refused.

param functionAppName string
@description('Default host name of the static web app allowed in (e.g. red-sea-123.azurestaticapps.net).')
param staticWebAppHostname string

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource authentication 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov reads every Microsoft.Web/sites/config as the 'web' configuration; this one is 'authsettingsV2', so its site-configuration checks do not apply:
  // checkov:skip=CKV_AZURE_13: This resource IS the App Service authentication (version 2: requireAuthentication, Return401); checkov looks for the version 1 siteAuthEnabled flag.
  // checkov:skip=CKV_AZURE_63: HTTP logging is a 'web' configuration setting, not part of authsettingsV2; the app's requests are traced in Application Insights.
  // checkov:skip=CKV_AZURE_65: Detailed error pages are a 'web' configuration setting, not part of authsettingsV2 (and stay off: the app returns its own JSON errors).
  // checkov:skip=CKV_AZURE_66: Failed request tracing is a 'web' configuration setting, not part of authsettingsV2; failures are traced in Application Insights.
  // checkov:skip=CKV_AZURE_80: .NET version is a 'web' configuration setting and this app is Python.
  // checkov:skip=CKV_AZURE_88: Azure Files mounts are a 'web' configuration setting; the app keeps no files (its state is in Table Storage).
  // checkov:skip=CKV_AZURE_222: Public network access is a site property; the linked backend must stay public, and this configuration is what refuses callers other than the static web app.
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureStaticWebApps: {
        enabled: true
        registration: {
          clientId: staticWebAppHostname
        }
      }
    }
  }
}
