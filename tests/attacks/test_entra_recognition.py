"""Microsoft Entra callers are recognised as Entra callers whatever cloud or user key is set, so
they keep one identity across client apps and may only exchange their own Teams token.

In process (no stack): these callers need an issuer host that only Microsoft serves, which no
local part can stand in for, so the decision functions are called directly with the caller the
bearer path would build."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from shared.access_policy import check_teams_exchange
from shared.caller import Caller, is_entra_issuer
from shared.errors import Forbidden
from shared.settings import load_settings

TENANT = "72f988bf-0000-4000-8000-00000000d0c1"


def test_the_china_cloud_v1_issuer_is_an_entra_issuer():
    """Azure China's v1 tokens are issued by https://sts.chinacloudapi.cn/<tenant>/ (its v2 ones
    by login.partner.microsoftonline.cn), learn.microsoft.com/en-us/answers/questions/1190472."""
    assert is_entra_issuer(f"https://sts.chinacloudapi.cn/{TENANT}/")


def _teams_token(oid: str) -> str:
    def part(document: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part({'tid': TENANT, 'oid': oid})}.c2ln"


def test_an_entra_bearer_caller_keyed_by_sub_still_exchanges_only_their_own_teams_token():
    """OIDC_USER_KEY=sub keys an Entra caller by issuer and sub, but the caller is still the
    Entra user their token's tid and oid name: someone else's Teams token is not theirs."""
    settings = load_settings({
        "ACS_CONNECTION_STRING": "endpoint=https://acs.example/;accesskey=a2V5", "TABLES_CONNECTION_STRING": "unused",
        "OIDC_USER_KEY": "sub", "TEAMS_EXCHANGE_ENABLED": "true", "TEAMS_ALLOWED_APP_IDS": "*", "TEAMS_ALLOWED_TENANT_IDS": "*",
    })
    issuer = f"https://login.microsoftonline.com/{TENANT}/v2.0"
    caller = Caller(app_user_id=f"{issuer}|pairwise-sub", roles=frozenset(), source="bearer", provider=issuer,
                    tenant_id=TENANT, object_id=str(uuid.uuid4()))
    someone_else = str(uuid.uuid4())
    with pytest.raises(Forbidden) as refused:
        check_teams_exchange(caller, settings, _teams_token(someone_else), str(uuid.uuid4()), someone_else)
    assert refused.value.code == "TeamsUserMismatch"
