"""The named mutations: each breaks one guarantee of the README in shared/ by replacing one
anchored snippet (which must occur exactly once in its file; if it does not, the mutation is
STALE and the check fails until it is updated to the code as it now is). ``guards`` names the
rows of tests/README.md's table whose tests must kill it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    anchor: str
    replacement: str
    guards: tuple[str, ...]
    why: str


MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "skip-the-conditional-insert", "shared/identity_store.py",
        'await self._call("insert", lambda t: t.create_entity(entity))',
        'await self._call("insert", lambda t: t.upsert_entity(entity))',
        ("G02",), "a second instance overwrites the first's mapping: the first identity is orphaned",
    ),
    Mutation(
        "ignore-no-cache", "shared/api.py",
        'fresh = "no-cache" in (req.headers.get("cache-control") or "").lower()',
        "fresh = False",
        ("G04",), "an explicit refresh is handed a recently issued token",
    ),
    Mutation(
        "drop-the-losers-delete", "shared/token_service.py",
        "        if not recorded:\n            await self._discard(communication_user_id, lost_race)",
        "        if not recorded:\n            pass",
        ("G02",), "the instance that lost the first-call race keeps its identity: an orphan",
    ),
    Mutation(
        "keep-the-identity-when-the-mapping-write-fails", "shared/token_service.py",
        '        except BaseException:\n            await self._discard(communication_user_id, "mapping write failed")',
        "        except BaseException:\n            pass",
        ("G05",), "an identity whose mapping could not be written is orphaned",
    ),
    Mutation(
        "skip-last-seen", "shared/token_service.py",
        "        known = self._identities.get(app_user_id)\n        if known is None or app_user_id in self._touching:",
        "        known = None\n        if known is None or app_user_id in self._touching:",
        ("G14",), "LastSeenAt is never kept: active users look inactive",
    ),
    Mutation(
        "retire-a-tombstone-early", "shared/cleanup.py",
        "if retention <= timedelta(0) or (tombstone.swept_at is not None and now - tombstone.swept_at >= retention):",
        "if True:",
        ("G07", "G09"), "a swept tombstone goes at once: a deleted user racing the sweep gets a new identity",
    ),
    Mutation(
        "keep-tombstones-forever", "shared/cleanup.py",
        "if retention <= timedelta(0) or (tombstone.swept_at is not None and now - tombstone.swept_at >= retention):",
        "if False:",
        ("G09",), "a deleted user is refused forever, and tombstones pile up",
    ),
    Mutation(
        "trust-the-header-without-the-setting", "shared/caller.py",
        "    if settings.trust_client_principal:",
        "    if True:",
        ("G15",), "anyone who can reach the function app can name any user in a forged header",
    ),
    Mutation(
        "accept-an-unknown-scope", "shared/access_policy.py",
        "        unknown = sorted({s for s in scopes if s not in settings.allowed_scopes | allowed.scopes})",
        "        unknown = []",
        ("G16",), "a caller gets scopes the app does not allow",
    ),
    Mutation(
        "log-a-token", "shared/api.py",
        'log.info("token issued for user %s", user_ref(caller.app_user_id))',
        'log.info("token issued for user %s: %s", user_ref(caller.app_user_id), issued.token)',
        ("G22",), "every issued token is written to the log",
    ),
    Mutation(
        "no-single-flight-on-issue", "shared/token_service.py",
        "        return await self._issuing.run((*flight, window), issue)",
        "        return await issue()",
        ("G03",), "a reload storm of one user costs one ACS call per request",
    ),
    Mutation(
        "no-single-flight-on-first-call", "shared/token_service.py",
        "await self._resolving.run(app_user_id, resolve)",
        "await resolve()",
        ("G01",), "concurrent first calls each create an identity",
    ),
    Mutation(
        "ignore-the-tombstone", "shared/token_service.py",
        "            if tombstoned:\n                raise Forbidden(",
        "            if False:\n                raise Forbidden(",
        ("G07",), "a deleted user signing in again gets an identity before the sweep",
    ),
    Mutation(
        "delete-only-the-mapping", "shared/token_service.py",
        '            if await self._acs.delete_identity(mapping.communication_user_id):\n                telemetry.identity_deleted("user_request")',
        '            if False:\n                telemetry.identity_deleted("user_request")',
        ("G26",), "DELETE /api/identity leaves the ACS identity (and its tokens) alive",
    ),
    Mutation(
        "revoke-nothing", "shared/token_service.py",
        "            await self._acs.revoke_tokens(communication_user_id)",
        "            pass",
        ("G25",), "revoked tokens keep working",
    ),
    Mutation(
        "reuse-a-token-across-scopes", "shared/token_service.py",
        "        key = (communication_user_id, scopes, minutes)\n        if not fresh:",
        "        key = (communication_user_id, (), minutes)\n        if not fresh:",
        ("G04",), "a token for other scopes is handed out again",
    ),
    Mutation(
        "cache-control-private", "shared/http_responses.py",
        '_HEADERS = {"Cache-Control": "no-store",',
        '_HEADERS = {"Cache-Control": "private",',
        ("G18",), "tokens may be kept by the browser's cache",
    ),
    Mutation(
        "accept-any-body-size", "shared/api.py",
        "    if len(body) > MAX_BODY_BYTES:",
        "    if False:",
        ("G19",), "bodies past 16 KiB are parsed",
    ),
    Mutation(
        "ignore-unknown-fields", "shared/api.py",
        "    unknown = sorted(set(data) - fields)",
        "    unknown = []",
        ("G16",), 'a typo such as "scope" is silently ignored',
    ),
    Mutation(
        "no-retry-after", "shared/http_responses.py",
        '        headers["Retry-After"] = str(retry_after)',
        "        pass",
        ("G20",), "429 and 503 do not say when to try again",
    ),
    Mutation(
        "misconfiguration-is-a-500", "shared/http_responses.py",
        "    except SettingsError as error:",
        "    except ZeroDivisionError as error:",
        ("G21",), "an invalid setting surfaces as a bare 500",
    ),
    Mutation(
        "sweep-skips-the-acs-delete", "shared/cleanup.py",
        "            deleted = await self._acs.delete_identity(mapping.communication_user_id) or deleted",
        "            deleted = True",
        ("G08",), "the sweep drops the mapping and keeps the identity: an orphan",
    ),
    Mutation(
        "sweep-ignores-its-time-budget", "shared/cleanup.py",
        "                if time.monotonic() >= deadline:\n                    report.left += 1",
        "                if False:\n                    report.left += 1",
        ("G11",), "a large backlog runs the sweep past the function timeout",
    ),
    Mutation(
        "dry-run-deletes", "shared/cleanup.py",
        "        report.table_operations += 1\n        if self._settings.cleanup_dry_run:",
        "        report.table_operations += 1\n        if False:",
        ("G10",), "CLEANUP_DRY_RUN deletes identities",
    ),
    Mutation(
        "sweep-keeps-the-mapping", "shared/cleanup.py",
        "            removed = await self._store.remove(mapping)",
        "            removed = True",
        ("G08",), "the sweep leaves the deleted user's mapping behind",
    ),
    Mutation(
        "mark-only-the-first-100", "shared/identity_store.py",
        "for start in range(0, len(unique), 100):",
        "for start in range(0, min(len(unique), 100), 100):",
        ("G13",), "an operator marking more than 100 users loses the rest",
    ),
    Mutation(
        "read-only-the-first-page", "shared/identity_store.py",
        "            if not continuation:\n                return",
        "            if True:\n                return",
        ("G13",), "tombstones past the first 1,000 are never swept",
    ),
    Mutation(
        "late-create-kept", "shared/acs_identity.py",
        "        except DependencyUnavailable as error:\n            if not pending.done():\n                pending.add_done_callback(self._delete_late_identity)",
        "        except DependencyUnavailable as error:\n            if False:\n                pending.add_done_callback(self._delete_late_identity)",
        ("G06",), "an identity created after the time budget is orphaned",
    ),
    Mutation(
        "case-folded-user-keys", "shared/identity_store.py",
        '    escaped = quote(app_user_id, safe="!$&\'()*+,;=:@-._~|")',
        '    escaped = quote(app_user_id.lower(), safe="!$&\'()*+,;=:@-._~|")',
        ("G17",), "users whose ids differ only by case share one identity",
    ),
    Mutation(
        "anyone-may-mark-users-deleted", "shared/api.py",
        "        if ADMIN_ROLE not in caller.roles:",
        "        if False:",
        ("G27",), "an ordinary user deletes other users' identities",
    ),
    Mutation(
        "health-always-healthy", "shared/api.py",
        '        if not await _health_checks.run("health", _dependencies_healthy):',
        "        if False:",
        ("G23",), "a probe keeps sending traffic to an instance whose dependencies are down",
    ),
    Mutation(
        "acs-refusal-blamed-on-the-caller", "shared/acs_identity.py",
        '                raise AcsRefused("Azure Communication Services refused the service\'s request.", retry_after=30) from None',
        '                raise InvalidRequest("Azure Communication Services refused the request.", code="AcsRefused") from None',
        ("G24",), "a deployment problem (a missing role) is reported as the caller's 400",
    ),
)
