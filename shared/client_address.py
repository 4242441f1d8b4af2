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

So the client is the address the platform appended, which a client cannot choose: reading
X-Forwarded-For from the right, past the platform's own internal hops (private, shared,
loopback, link-local and unique-local addresses, such as the proxy's ``[fd00::…]``) and past the
proxy's address as App Service saw it (X-Client-IP), the first address left. Whatever a client
wrote itself sits to the left of it and is never read, so nobody can pick a bucket, or spend
another person's by naming their address. Only when every entry is internal (a private network,
this machine) does the first one count. IPv6 clients are grouped by their /64, the block one
subscriber usually holds; a request whose chain cannot be read shares one bucket.
"""

from __future__ import annotations

import ipaddress
from typing import Mapping

from .headers import header

UNKNOWN = "unknown"
_MAX_HEADER_CHARS = 2048
#: Addresses of the platform's own hops, never a person on the internet.
_INTERNAL = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "fc00::/7", "fe80::/10", "::1/128",
))

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> Address | None:
    """The address in ``1.2.3.4``, ``1.2.3.4:5678``, ``[2001:db8::1]:443`` or ``2001:db8::1``
    (an IPv4-mapped IPv6 address as its IPv4 one); None when it is none of these."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _key(address: Address) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _internal(address: Address) -> bool:
    return any(address.version == network.version and address in network for network in _INTERNAL)


def client_address(headers: Mapping[str, str]) -> str:
    """The budget key of the request's client (see the module docstring)."""
    peer_text = header(headers, "x-client-ip") or header(headers, "client-ip")
    peer = _address(peer_text[:_MAX_HEADER_CHARS]) if peer_text else None
    forwarded = header(headers, "x-forwarded-for")
    if not forwarded:
        return _key(peer) if peer is not None else UNKNOWN
    entries = [_address(entry) for entry in forwarded[:_MAX_HEADER_CHARS].split(",")]
    for entry in reversed(entries):
        if entry is None:
            return UNKNOWN  # the platform appends addresses: text it cannot have written came first
        if not _internal(entry) and entry != peer:
            return _key(entry)
    return _key(entries[0]) if entries[0] is not None else UNKNOWN
