"""Reading a request header by name, the one way every module of the service does it."""

from __future__ import annotations

from typing import Mapping


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by lower-case ``name``, from a case-insensitive mapping or a plain dict.

    ``name in headers`` is one hash lookup. azure.functions' header mapping stores lower-case
    names and lower-cases the name it is asked for (``BaseHeaders`` in azure/functions/_http.py),
    so a miss there is final: ``Mapping.get`` would raise and catch a KeyError inside it, and a
    scan would visit every header for nothing, on every request without the header. Any other
    mapping (a plain dict) is scanned for another spelling of the name after a miss."""
    if name in headers:
        return headers[name]
    if type(headers).__module__.startswith("azure.functions"):
        return None
    for key, candidate in headers.items():
        if isinstance(key, str) and key.lower() == name:
            return candidate
    return None
