#!/usr/bin/env bash
# Fetch the pinned prime-rl (git submodule) and its own submodules, then install its environment
# (torch, vLLM, flash-attn: GPU nodes only). prime-rl's submodules use SSH URLs
# (git@github.com:...); they are rewritten to https here, so no GitHub SSH key is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
git -c url."https://github.com/".insteadOf="git@github.com:" submodule update --init --recursive prime-rl
(cd prime-rl && uv sync --all-extras)   # --all-extras: vllm-router and flash-attn, which `rl` uses
echo "prime-rl is ready: uv run python -m src.train --config configs/harbor_8b.toml --dry-run"
