"""What the app checks once when the Functions host loads it: settings that cannot work are named
in one error line at startup (the app then answers 503 ServiceMisconfigured, and /api/health says
why), instead of surfacing only when the first caller arrives. Cheap: it reads the environment
and host.json, and builds no client.

It also says, in one warning line, when the settings allow chat scopes: ACS Chat retires on
2028-09-30 (MicrosoftDocs/azure-docs, articles/communication-services/
acs-retirement-and-breaking-changes-guide.md, 2026-08-18), and with it tokens for chat,
chat.join and chat.join.limited stop being useful. The default (voip only) logs nothing."""

from __future__ import annotations

import logging

from .caller import PLATFORM_AUTH_OFF_MESSAGE
from .settings import CHAT_RETIREMENT_DATE, CHAT_SCOPES, SettingsError, get_settings

log = logging.getLogger(__name__)


def check_settings() -> bool:
    """Log one error line for each reason the app cannot serve as configured; True when none."""
    try:
        settings = get_settings()
    except SettingsError as error:
        log.error("refusing the settings: %s; every request is answered 503 ServiceMisconfigured until it is fixed", error)
        return False
    chat = sorted(settings.allowed_scopes & CHAT_SCOPES)
    if chat:
        log.warning(
            "ACS_ALLOWED_SCOPES allows the chat scopes %s: Azure Communication Services Chat retires on %s, "
            "after which tokens with them serve no supported feature (see README, After September 2028)",
            ", ".join(chat), CHAT_RETIREMENT_DATE,
        )
    if settings.trust_client_principal and not settings.platform_auth_enabled:
        log.error("%s; principal-header callers are refused (401) and /api/health answers 503", PLATFORM_AUTH_OFF_MESSAGE)
        return False
    return True
