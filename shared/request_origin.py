"""Whether a request was sent by another site's page: such requests may not change anything.

Behind Static Web Apps the caller is whoever the session cookie names, and a browser sends that
cookie with requests another site's page makes it send. Without a CORS preflight a page can only
make "simple" requests (POST with no body, or a form, multipart or text/plain body, or one with no
Content-Type; https://fetch.spec.whatwg.org/#cors-safelisted-request-header), so the service
refuses two things before it spends anyone's budget or changes anything:

* a request the browser marks as coming from another site or origin (403 CrossSiteRequest, this
  module), first of all, before the caller is read;
* a non-empty body that does not say it is JSON (shared/api.py read_json, 400
  UnsupportedContentType): a page cannot send ``Content-Type: application/json`` to another
  origin without a preflight, which the function app never answers with CORS headers (infra: no
  CORS entry).

Which requests are another site's, in the order checked:

* ``Sec-Fetch-Site`` (Fetch Metadata, https://www.w3.org/TR/fetch-metadata/), set by the browser
  itself and not settable by a page (a forbidden header name): ``cross-site`` and ``same-site``
  (another origin of the same registrable domain) are refused; ``same-origin`` is the browser's
  own verdict and is believed, so a proxy that rewrites Host cannot turn the app's page away.
  Every current browser sends it (Chrome and Edge 76+, Firefox 90+, Safari 16.4+).
* Otherwise (older browsers, ``none``, non-browser clients): an ``Origin`` header, which browsers
  send on every POST and DELETE, must be absent or name the host the request was sent to:
  ``Host``, an ``X-Forwarded-Host`` entry, or the host of ``X-MS-Original-URL`` (the URL Static
  Web Apps says the browser asked for, Azure/static-web-apps#580). ``Origin: null`` (sandboxed
  frames, file and data pages) is never this site's page. A page cannot set any of these headers
  on a request without a preflight, so naming the service's host there does not help it.

A client that is not a browser carries no one's cookie: it may send what it likes, and is still
only itself. Header checks only, in memory: no I/O on any path.
"""

from __future__ import annotations

from typing import Mapping
from urllib.parse import urlsplit

from .errors import Forbidden
from .headers import header

CROSS_SITE_REQUEST = "CrossSiteRequest"
_REFUSED_SITES = frozenset({"cross-site", "same-site"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_HEADER_CHARS = 2048


def _host_and_port(authority: str, default_port: int | None) -> tuple[str, int | None] | None:
    """``host``, ``host:port`` or ``[v6]:port`` as (lower-case host, port); None if unreadable."""
    try:
        parts = urlsplit(f"//{authority.strip()}")
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    return host.lower(), port if port is not None else default_port


def _origin(value: str) -> tuple[str, tuple[str, int | None]] | None:
    """An Origin header's (scheme, (host, port)), or None for ``null`` or anything unreadable."""
    try:
        parts = urlsplit(value.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not host:
        return None
    return parts.scheme, (host.lower(), port if port is not None else _DEFAULT_PORTS[parts.scheme])


def _request_hosts(headers: Mapping[str, str], scheme: str) -> set[tuple[str, int | None]]:
    """The (host, port) pairs the request says it was sent to; a Host without a port is taken at
    the Origin scheme's default port."""
    hosts: set[tuple[str, int | None]] = set()
    default = _DEFAULT_PORTS[scheme]
    for name in ("host", "x-forwarded-host"):
        value = header(headers, name)
        for entry in (value or "")[:_MAX_HEADER_CHARS].split(","):
            if entry.strip():
                parsed = _host_and_port(entry, default)
                if parsed is not None:
                    hosts.add(parsed)
    original = header(headers, "x-ms-original-url")
    if original:
        try:
            parts = urlsplit(original[:_MAX_HEADER_CHARS].strip())
            if parts.hostname and parts.scheme in _DEFAULT_PORTS:
                hosts.add((parts.hostname.lower(), parts.port if parts.port is not None else _DEFAULT_PORTS[parts.scheme]))
        except ValueError:
            pass
    return hosts


def is_cross_site(headers: Mapping[str, str]) -> bool:
    """Whether the request comes from a page of another site or origin (module docstring)."""
    site = header(headers, "sec-fetch-site")
    if site is not None:
        verdict = site.strip().lower()
        if verdict in _REFUSED_SITES:
            return True
        if verdict == "same-origin":
            return False
    origin = header(headers, "origin")
    if origin is None:
        return False
    parsed = _origin(origin[:_MAX_HEADER_CHARS])
    if parsed is None:
        return True
    scheme, origin_host = parsed
    return origin_host not in _request_hosts(headers, scheme)


def refuse_cross_site(headers: Mapping[str, str]) -> None:
    """Raise 403 CrossSiteRequest for a request of another site's page (see the module docstring)."""
    if is_cross_site(headers):
        raise Forbidden(
            "This request came from a page of another site, so it was refused: use this service from its own pages.",
            code=CROSS_SITE_REQUEST,
        )
