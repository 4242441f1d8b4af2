"""``python -m devstack.acs_emulator``: serve the ACS Identity emulator over TLS on loopback."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import uuid
from pathlib import Path

from devstack.pki import ensure_pki
from devstack.signals import until_stopped

from . import EmulatorConfig, create_app, start
from .store import resource_id_in


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack.acs_emulator", description="Local ACS Identity emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7090)
    parser.add_argument("--state-dir", type=Path, default=Path(".devstack"), help="PKI and the emulator's token key")
    parser.add_argument("--state-file", type=Path, help="keep identities, revocations and deletions here (JSON)")
    parser.add_argument(
        "--access-key",
        default=os.environ.get("ACS_EMULATOR_ACCESS_KEY"),
        help="base64 access key of the connection string (default: $ACS_EMULATOR_ACCESS_KEY)",
    )
    parser.add_argument(
        "--resource-id",
        default=os.environ.get("ACS_EMULATOR_RESOURCE_ID"),
        help="GUID of the resource (default: the state file's, else a new one)",
    )
    parser.add_argument(
        "--identity-public-key",
        type=Path,
        help="PEM public key of the managed-identity endpoint (default: the dev stack's signing.pub)",
    )
    parser.add_argument("--limit-scale", type=float, default=1.0, help="multiply the service's throttling limits")
    parser.add_argument("--quiet", action="store_true", help="no access log (for benchmarks)")
    parser.add_argument("--revocation-delay", type=float, default=0.0,
                        help="seconds a revoked token keeps verifying (real ACS: up to 15 minutes)")
    parser.add_argument("--deleted-identity-answer", choices=["404", "400", "403", "401"], default="404",
                        help="what a deleted identity gets (real ACS: undocumented)")
    parser.add_argument("--identical-tokens-within-second", action="store_true",
                        help="identical issues within one second return the same token, as real ACS may")
    args = parser.parse_args(argv)
    if not args.access_key:
        parser.error("--access-key (or ACS_EMULATOR_ACCESS_KEY) is required")
    if not args.resource_id:
        args.resource_id = (args.state_file and resource_id_in(args.state_file)) or str(uuid.uuid4())
    return args


async def _serve(args: argparse.Namespace) -> None:
    pki = ensure_pki(args.state_dir)
    public_key_path = args.identity_public_key or pki.signing_public
    config = EmulatorConfig(
        access_key=args.access_key,
        resource_id=args.resource_id,
        identity_public_key_pem=public_key_path.read_bytes(),
        token_key_path=args.state_dir.resolve() / "acs-emulator-token.key",
        state_file=args.state_file,
        limit_scale=args.limit_scale,
        access_log=not args.quiet,
        revocation_delay_seconds=args.revocation_delay,
        deleted_identity_answer=args.deleted_identity_answer,
        identical_tokens_within_second=args.identical_tokens_within_second,
    )
    runner = await start(create_app(config), args.host, args.port, pki.server_ssl_context(), access_log=config.access_log)
    print(f"ACS emulator ready on https://{args.host}:{args.port} (resource {config.resource_id})", flush=True)
    try:
        await until_stopped()
    finally:
        await runner.cleanup()  # flushes the state file


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()
