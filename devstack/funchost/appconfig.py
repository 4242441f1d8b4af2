"""The two files Core Tools reads before starting an app: local.settings.json and host.json.

local.settings.json's ``Values`` become environment variables before the app is
imported, exactly as Core Tools does, so the app reads its settings the same way
locally and in Azure. A variable already set in the environment wins, which lets a
test or a shell override one setting without editing the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, MutableMapping, Optional


class AppConfigError(ValueError):
    """A settings or host file the host cannot use; the message names the file."""


def _read_json(path: Path) -> Any:
    try:
        # utf-8-sig: files saved by Windows editors often start with a BOM.
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as error:
        raise AppConfigError(f"{path} is not valid JSON: {error}") from None


def load_local_settings(path: Path, environ: MutableMapping[str, str]) -> list[str]:
    """Copy ``Values`` into ``environ`` without overriding; return the names applied.

    A missing file is fine (Core Tools warns and carries on); an encrypted one is not,
    because its values would be ciphertext.
    """
    if not path.is_file():
        return []
    document = _read_json(path)
    if not isinstance(document, dict):
        raise AppConfigError(f"{path} must hold a JSON object")
    if document.get("IsEncrypted"):
        raise AppConfigError(f"{path} is encrypted; decrypt it with 'func settings decrypt' first")
    values = document.get("Values") or {}
    if not isinstance(values, dict):
        raise AppConfigError(f"{path}: 'Values' must be an object")
    applied = []
    for name, value in values.items():
        if name in environ:
            continue
        environ[name] = "" if value is None else str(value)
        applied.append(name)
    return applied


@dataclass(frozen=True)
class HostConfig:
    """The parts of host.json this host honours."""

    route_prefix: str = "api"


def load_host_config(path: Path) -> HostConfig:
    """Read ``extensions.http.routePrefix`` (default "api"; "" serves routes at the root)."""
    if not path.is_file():
        return HostConfig()
    document = _read_json(path)
    http: Mapping[str, Any] = ((document or {}).get("extensions") or {}).get("http") or {}
    prefix: Optional[str] = http.get("routePrefix")
    if prefix is None:
        return HostConfig()
    if not isinstance(prefix, str):
        raise AppConfigError(f"{path}: extensions.http.routePrefix must be a string")
    return HostConfig(route_prefix=prefix.strip("/"))


def resolve_binding_expression(value: str, environ: Mapping[str, str] = os.environ) -> str:
    """Resolve a whole-value ``%SETTING%`` binding expression from app settings."""
    if len(value) > 2 and value.startswith("%") and value.endswith("%"):
        name = value[1:-1]
        if name not in environ:
            raise AppConfigError(f"app setting {name!r} (used as {value}) is not set")
        return environ[name]
    return value
