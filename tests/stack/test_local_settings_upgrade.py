"""`make dev` keeps a developer's local.settings.json: settings added since it was written are
filled in (an older file would otherwise lack the platform-auth signal and refuse every signed-in
request), and values the developer set are never changed."""

from __future__ import annotations

import json
from pathlib import Path

from devstack.stack import _add_missing_settings


def test_an_older_local_settings_file_gains_the_settings_it_lacks_and_keeps_its_own_values(tmp_path: Path, capsys):
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"IsEncrypted": False, "Values": {"TOKEN_DEFAULT_MINUTES": "120", "MY_OWN": "x"}}))

    _add_missing_settings(settings, {"TOKEN_DEFAULT_MINUTES": "60", "WEBSITE_AUTH_ENABLED": "True"})

    values = json.loads(settings.read_text())["Values"]
    assert values == {"TOKEN_DEFAULT_MINUTES": "120", "MY_OWN": "x", "WEBSITE_AUTH_ENABLED": "True"}
    assert "added settings it lacked: WEBSITE_AUTH_ENABLED" in capsys.readouterr().out


def test_an_unreadable_local_settings_file_is_left_as_it_is(tmp_path: Path):
    settings = tmp_path / "local.settings.json"
    settings.write_text("{ not json")

    _add_missing_settings(settings, {"WEBSITE_AUTH_ENABLED": "True"})

    assert settings.read_text() == "{ not json"
