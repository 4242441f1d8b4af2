#!/usr/bin/env bash
# Runs once when the dev container is created (onCreateCommand), before the editor attaches:
# everything `make dev` and `make test` would otherwise install on their first run, so both work
# unchanged inside the container.
set -euo pipefail
cd "$(dirname "$0")/.."

# The image runs as the non-root "vscode" user with passwordless sudo; apt needs root.
command -v make >/dev/null || { sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq make; }
sudo make browser        # Debian's chromium, for the browser test
make install web         # .venv (requirements-dev.txt), node_modules, web/dist

# The local stack's certificate authority, created now (make dev reuses it) so that editor
# processes started after this step (the REST Client extension) trust the emulators' https
# through NODE_EXTRA_CA_CERTS (set in devcontainer.json's remoteEnv).
.venv/bin/python -c 'from pathlib import Path; from devstack.pki import ensure_pki; ensure_pki(Path(".devstack"))'
