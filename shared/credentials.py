"""The one managed-identity credential of the process.

DefaultAzureCredential finds the App Service / Functions identity endpoint (IDENTITY_ENDPOINT and
IDENTITY_HEADER) in Azure and in the local stack alike, and AZURE_CLIENT_ID selects a
user-assigned identity. It caches its tokens, so it is built once and shared by every client.
"""

from __future__ import annotations

from functools import lru_cache

from azure.core.credentials_async import AsyncTokenCredential


@lru_cache(maxsize=1)
def get_credential() -> AsyncTokenCredential:
    """The process-wide credential, created on first use so importing the app stays cheap."""
    return new_credential()


def new_credential() -> AsyncTokenCredential:
    """A DefaultAzureCredential configured as the service uses it (for the process-wide one, and
    for anything that must authenticate exactly as the service does)."""
    from azure.identity.aio import DefaultAzureCredential

    # Interactive and developer-tool credentials make no sense inside a function app and each
    # costs a subprocess or a network probe when the identity endpoint is briefly unreachable.
    return DefaultAzureCredential(
        exclude_interactive_browser_credential=True,
        exclude_visual_studio_code_credential=True,
        exclude_powershell_credential=True,
        exclude_developer_cli_credential=True,
        exclude_cli_credential=True,
        exclude_shared_token_cache_credential=True,
    )
