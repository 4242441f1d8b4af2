"""A function host per sweep test, with its own identity table: the sweep's summary then counts
only that test's users, so its numbers can be checked exactly (the shared table holds every
other test's tombstones too)."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any, Callable, Iterator

import pytest
import requests

from tests.conftest import Api, FunctionHost, User, new_user

ADMIN = ("anonymous", "authenticated", "admin")
_SUMMARY = re.compile(r"cleanup (dry run )?found=(\d+) deleted=(\d+) already_gone=(\d+) retained=(\d+) failed=(\d+) "
                      r"left=(\d+) inactive=(\d+)")


class SweepHost:
    """A function host whose identity table is its own; ``sweep()`` runs the timer function by
    hand (POST /admin/functions/cleanup_deleted_users, as Azure Functions does) and returns the
    numbers of the summary line that run logged."""

    def __init__(self, stack: dict, overrides: dict[str, str], name: str) -> None:
        from azure.data.tables import TableServiceClient

        self.table_name = overrides.pop("IDENTITY_TABLE_NAME", None) or f"sweep{uuid.uuid4().hex[:12]}"
        self.host = FunctionHost(stack, {"IDENTITY_TABLE_NAME": self.table_name, **overrides}, name)
        self.api = Api(self.host.base)
        service = TableServiceClient.from_connection_string(stack["tablesConnectionString"])
        self.table = service.create_table_if_not_exists(self.table_name)

    def users_with_identities(self, count: int) -> list[tuple[User, str]]:
        users = []
        for _ in range(count):
            user = new_user()
            response = self.api.token(user)
            assert response.status_code == 200, response.text
            users.append((user, response.json()["communicationUserId"]))
        return users

    def mark(self, app_user_ids: list[str]) -> requests.Response:
        return self.api.call("POST", "/api/manage/deleted-users", new_user(ADMIN), json={"appUserIds": app_user_ids})

    def summaries(self) -> list[dict[str, Any]]:
        found = []
        for match in _SUMMARY.finditer(self.host.log_text()):
            names = ("found", "deleted", "already_gone", "retained", "failed", "left", "inactive")
            found.append({"dry_run": bool(match.group(1)), **{n: int(v) for n, v in zip(names, match.groups()[1:])}})
        return found

    def sweep(self, timeout: float = 120) -> dict[str, Any]:
        before = len(self.summaries())
        response = requests.post(f"{self.host.base}/admin/functions/cleanup_deleted_users", json={"input": ""}, timeout=30)
        assert response.status_code == 202, response.text
        deadline = time.monotonic() + timeout
        while len(self.summaries()) == before:
            assert time.monotonic() < deadline, "the sweep logged no summary"
            assert self.host.proc.poll() is None, "the function host died during the sweep"
            time.sleep(0.1)
        return self.summaries()[before]

    def tombstones(self) -> dict[str, dict]:
        return {e["AppUserId"]: e for e in self.table.query_entities("PartitionKey eq 'tombstones'")}

    def mappings(self) -> dict[str, dict]:
        return {e["AppUserId"]: e for e in self.table.query_entities("RowKey eq 'identity'")}

    def stop(self) -> None:
        self.host.stop()
        try:
            self.table.delete_table()
        except Exception:  # noqa: BLE001 - another host of the same test shared (and dropped) it
            pass


@pytest.fixture
def sweep_host(stack: dict) -> Iterator[Callable[..., SweepHost]]:
    """Start a SweepHost with some settings overridden; stopped (and its table dropped) after."""
    hosts: list[SweepHost] = []

    def start(name: str, **overrides: str) -> SweepHost:
        host = SweepHost(stack, overrides, name)
        hosts.append(host)
        return host

    yield start
    for host in hosts:
        host.stop()
