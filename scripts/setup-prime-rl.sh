#!/usr/bin/env bash
# Set up prime-rl for training (GPU nodes): the pinned submodule and its own submodules, its
# environment from its own lock (torch, vLLM, flash-attn), and, when named, Harbor's SDK
# extras for cloud environment types:
#
#   bash scripts/setup-prime-rl.sh                 # docker and local environments
#   bash scripts/setup-prime-rl.sh modal e2b       # also Harbor's `modal` and `e2b` extras
#
# Nothing of this project is installed into prime-rl's environment: the launcher puts src/ on
# PYTHONPATH. An extra adds only its SDK: harbor stays at prime-rl's pin and every package
# prime-rl's lock installed stays at its version (they are given as constraints), so a
# conflict is an error here, not a changed training stack. `uv sync` in prime-rl/ removes
# what its lock does not list: rerun this script after one.
set -euo pipefail
cd "$(dirname "$0")/.."
prime_rl="${PRIME_RL_DIR:-prime-rl}"

# prime-rl's submodules use SSH URLs (git@github.com:...); https needs no GitHub SSH key.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git -c url."https://github.com/".insteadOf="git@github.com:" submodule update --init --recursive "$prime_rl"
fi
(cd "$prime_rl" && uv sync --all-extras)   # --all-extras: vllm-router and flash-attn, which `rl` uses

python="$prime_rl/.venv/bin/python"
if [ $# -gt 0 ]; then
  harbor_version=$("$python" -c 'import importlib.metadata as m; print(m.version("harbor"))')
  constraints=$(mktemp)
  trap 'rm -f "$constraints"' EXIT
  uv pip freeze --python "$python" | grep -E '^[A-Za-z0-9_.-]+==' >"$constraints"
  extras=$(IFS=,; echo "$*")
  echo "installing harbor[$extras]==$harbor_version into $prime_rl/.venv (prime-rl's packages held at their versions)"
  uv pip install --python "$python" -c "$constraints" "harbor[$extras]==$harbor_version"
fi

# The check the launcher repeats before every run: harbor-env loads on prime-rl's Python.
PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" "$python" -m harbor_env.launcher.stack_probe --check local docker "$@"
echo "prime-rl is ready: uv run rl @ configs/harbor_8b.toml --dry-run"
