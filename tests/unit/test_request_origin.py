"""Which requests count as another site's page's (shared/request_origin.py): the browser's own
Sec-Fetch-Site first, else the Origin against the host the request was sent to. In process: the
decision reads headers only (the same refusals over HTTP: tests/trust/test_cross_site.py)."""

from __future__ import annotations

import pytest

from shared.errors import Forbidden
from shared.request_origin import is_cross_site, refuse_cross_site

SITE = "app.azurestaticapps.net"

SERVED = {
    "a non-browser client (no Origin, no fetch metadata)": {"Host": SITE},
    "the browser says same-origin": {"Sec-Fetch-Site": "same-origin", "Origin": f"https://{SITE}", "Host": SITE},
    "same-origin even when a proxy rewrote Host": {"Sec-Fetch-Site": "same-origin", "Origin": f"https://{SITE}",
                                                   "Host": "func-app.azurewebsites.net"},
    "an older browser on this host": {"Origin": f"https://{SITE}", "Host": SITE},
    "Origin and Host differing in case": {"Origin": f"https://{SITE.upper()}", "host": SITE},
    "Host with the default port": {"Origin": f"https://{SITE}", "Host": f"{SITE}:443"},
    "the local Static Web Apps CLI": {"Origin": "http://localhost:4280", "Host": "localhost:4280"},
    "the host a proxy forwarded": {"Origin": f"https://{SITE}", "Host": "func-app.azurewebsites.net",
                                   "X-Forwarded-Host": SITE},
    "the URL Static Web Apps says the browser asked for": {"Origin": f"https://{SITE}", "Host": "func-app",
                                                           "X-MS-Original-URL": f"https://{SITE}/api/token"},
    "a user's own navigation": {"Sec-Fetch-Site": "none", "Host": SITE},
    "IPv6 host and port": {"Origin": "http://[::1]:7071", "Host": "[::1]:7071"},
}

REFUSED = {
    "the browser says cross-site": {"Sec-Fetch-Site": "cross-site", "Host": SITE},
    "cross-site whatever the Origin claims": {"Sec-Fetch-Site": "Cross-Site", "Origin": f"https://{SITE}", "Host": SITE},
    "another origin of the same site": {"Sec-Fetch-Site": "same-site", "Origin": f"https://blog.{SITE}", "Host": SITE},
    "an older browser on another site": {"Origin": "https://attacker.example", "Host": SITE},
    "a sibling subdomain without fetch metadata": {"Origin": f"https://evil.{SITE}", "Host": SITE},
    "another port": {"Origin": f"https://{SITE}:8443", "Host": SITE},
    "another scheme's default port": {"Origin": f"http://{SITE}", "Host": f"{SITE}:443"},
    "a sandboxed frame or file page": {"Origin": "null", "Host": SITE},
    "an Origin that is no URL": {"Origin": "attacker", "Host": SITE},
    "an Origin of another scheme": {"Origin": f"chrome-extension://{SITE}", "Host": SITE},
    "an Origin with a port that is no number": {"Origin": f"https://{SITE}:x", "Host": SITE},
    "no Host to compare with": {"Origin": f"https://{SITE}"},
}


@pytest.mark.parametrize("headers", SERVED.values(), ids=SERVED.keys())
def test_requests_of_this_sites_pages_and_of_non_browser_clients_are_served(headers: dict[str, str]):
    assert not is_cross_site(headers)
    refuse_cross_site(headers)


@pytest.mark.parametrize("headers", REFUSED.values(), ids=REFUSED.keys())
def test_requests_of_another_sites_page_are_refused(headers: dict[str, str]):
    with pytest.raises(Forbidden) as refused:
        refuse_cross_site(headers)
    assert refused.value.code == "CrossSiteRequest"
    assert "another site" in refused.value.message
