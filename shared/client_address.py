"""Which client a request comes from, for the guest budgets: the address the platform forwarded.

In Azure the function app admits only its static web app (infra/app/api-auth.bicep), so every
request reaches it through Static Web Apps' proxy and then App Service's front end. What each hop
sets, as far as public sources tell:

* ``X-Forwarded-For``: the client's address first, with its port, then the platform's own hops,
  as seen on Static Web Apps' API requests (``"8.23.191.142:52987, [fd00::…]:64909"``,
  geoffrich/svelte-adapter-azure-swa pull request #71); Azure Front Door documents appending the
  socket address it saw to a header the client sent (learn.microsoft.com/azure/frontdoor/
  front-door-http-headers-protocol). Whether Static Web Apps drops a client-sent value or keeps it
  in front is not documented.
* ``X-Client-IP`` / ``client-ip``: set by App Service's front end, overwriting any sent value
  (Azure/app-service-linux-docs pull request #140, "Headers on Azure App Service"), but for a
  linked backend that is the address of Static Web Apps' proxy, not the person's: every guest
  would share one budget. It is only the fallback when no X-Forwarded-For is present.

So the client is the first X-Forwarded-For address. If a client can put its own value there,
it can choose its per-client bucket; the per-instance total budget bounds what it can spend
either way (README, "After September 2028", the abuse model). IPv6 clients are grouped by their
/64, the block one subscriber usually holds; anything that is not an address shares one bucket.
"""

from __future__ import annotations

import ipaddress
from typing import Mapping

UNKNOWN = "unknown"
_MAX_HEADER_CHARS = 2048


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        for key, candidate in headers.items():
            if isinstance(key, str) and key.lower() == name:
                return candidate
    return value


def _address(text: str) -> str | None:
    """An address from ``1.2.3.4``, ``1.2.3.4:5678``, ``[2001:db8::1]:443`` or ``2001:db8::1``,
    as its budget key; None when it is none of these."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def client_address(headers: Mapping[str, str]) -> str:
    """The budget key of the request's client (see the module docstring)."""
    for name in ("x-forwarded-for", "x-client-ip", "client-ip"):
        value = _header(headers, name)
        if value:
            first = value[:_MAX_HEADER_CHARS].split(",")[0]
            return _address(first) or UNKNOWN
    return UNKNOWN
