#!/usr/bin/env bash
# Run the test suite on the stack the pinned prime-rl commit uses (verifiers 0.3.1 +
# harbor 0.21.0) instead of the lock's (verifiers 0.4 + harbor 0.24), in .venv-pinned.
set -euo pipefail
cd "$(dirname "$0")/.."
uv venv -q --allow-existing .venv-pinned
VIRTUAL_ENV=.venv-pinned uv pip install -q -e . "verifiers[harbor]==0.3.1" "harbor==0.21.0" \
  "pytest>=8.3" "pytest-timeout>=2.3" "pytest-asyncio>=0.24"
.venv-pinned/bin/python -c 'import importlib.metadata as m; print("pinned stack: verifiers", m.version("verifiers"), "harbor", m.version("harbor"))'
.venv-pinned/bin/python -m pytest "$@"
