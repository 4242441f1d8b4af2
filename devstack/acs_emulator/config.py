"""The emulator's start-up configuration and the knobs tests turn at run time."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from pathlib import Path

API_VERSION = "2023-10-01"
#: The api-supported-versions header real ACS sent in 2025 (../acs-recordings, js__ sessions,
#: recorded 2025-04-07); the Teams exchange route lists fewer.
IDENTITY_API_VERSIONS = (
    "2020-07-20-preview2, 2021-03-07, 2021-10-31-preview, 2021-11-01, 2022-06-01, 2022-10-01, 2023-10-01, "
    "2025-03-02-preview"
)
TEAMS_API_VERSIONS = "2021-10-31-preview, 2022-06-01, 2022-10-01, 2023-10-01, 2025-03-02-preview"
#: Accepted api-versions: those the service lists (the SDK 1.5.0 sends 2023-10-01).
SUPPORTED_API_VERSIONS = frozenset(v.strip() for v in IDENTITY_API_VERSIONS.split(","))
#: What a deleted (or never created) identity gets from issue, revoke and delete. Real ACS's
#: answer is not documented (../ACS_FACTS.md: UNKNOWN), so each plausible one can be chosen;
#: "401" answers as the service does for another resource's identity (recorded).
DELETED_IDENTITY_ANSWERS: dict[str, tuple[int, str, str | None]] = {
    "404": (404, "IdentityNotFound", None),
    "400": (400, "ValidationError", None),
    "403": (403, "IdentityNotFound", None),
    "401": (401, "IdentityNotOwned", None),
}
DELETED_IDENTITY_MESSAGE = "Provided identity doesn't exist."
NOT_OWNED_MESSAGE = "Provided identity doesn't belong to the resource."

SCOPES = frozenset({"chat", "chat.join", "chat.join.limited", "voip", "voip.join"})
MIN_MINUTES, MAX_MINUTES, DEFAULT_MINUTES = 60, 1440, 1440

#: The service's documented limits: requests per operation per 30-second window.
DEFAULT_LIMITS: dict[str, int] = {
    "createIdentity": 1000,
    "createIdentityAndToken": 1000,
    "issueAccessToken": 1000,
    "deleteIdentity": 500,
    "revokeAccessTokens": 500,
    "exchangeTeamsUserAccessToken": 500,
}
LIMIT_WINDOW_SECONDS = 30.0

#: Operation names as used by faults, limits and stats.
OPERATIONS = tuple(DEFAULT_LIMITS)

BEARER_AUDIENCES = ("https://communication.azure.com", "https://communication.azure.com/")
TEAMS_AUDIENCES = ("https://auth.msft.communication.azure.com", "https://auth.msft.communication.azure.com/")


@dataclass(frozen=True)
class EmulatorConfig:
    """Fixed for the life of the process.

    ``identity_public_key_pem`` verifies bearer tokens (managed identity) and Entra user tokens
    (Teams exchange); without it only HMAC (connection string) auth works.
    ``token_key_path`` keeps the key that signs ACS tokens across restarts (generated in memory
    when None). ``state_file`` keeps identities, revocations and deletions across restarts.
    """

    access_key: str
    resource_id: str
    identity_public_key_pem: bytes | None = None
    token_key_path: Path | None = None
    state_file: Path | None = None
    resource_location: str = "unitedstates"
    region: str = "amer"
    max_clock_skew_seconds: int = 15 * 60
    #: Multiplies every per-operation limit (0.01 for tiny limits in tests, 100 for benchmarks).
    limit_scale: float = 1.0
    limit_window_seconds: float = LIMIT_WINDOW_SECONDS
    access_log: bool = True
    #: Start-up values of the run-time knobs of the same names (see limits.Settings).
    revocation_delay_seconds: float = 0.0
    deleted_identity_answer: str = "404"
    identical_tokens_within_second: bool = False

    def __post_init__(self) -> None:
        try:
            if not base64.b64decode(self.access_key, validate=True):
                raise ValueError
        except (binascii.Error, ValueError):
            raise ValueError("access_key must be non-empty base64") from None
        uuid.UUID(self.resource_id)  # raises ValueError naming the problem
        if self.limit_scale <= 0 or self.limit_window_seconds <= 0:
            raise ValueError("limit_scale and limit_window_seconds must be positive")
        if self.deleted_identity_answer not in DELETED_IDENTITY_ANSWERS or self.revocation_delay_seconds < 0:
            raise ValueError(f"deleted_identity_answer must be one of {sorted(DELETED_IDENTITY_ANSWERS)}")

    @property
    def access_key_bytes(self) -> bytes:
        return base64.b64decode(self.access_key)
