#!/usr/bin/env bash
# Run the test suite on a named stack, each in a venv of its own (.venv-<stack>):
#   pinned  what prime-rl 559b4477 (the submodule's pin) really runs: verifiers a60a606 from
#           source as 0.3.1.dev62, harbor 0.21.0, renderers and prime-pydantic-config as PyPI
#           had them on 2026-08-22, transformers 5.6.2 (prime-rl's override)
#   newest  the newest releases that install together: verifiers 0.4.0 + harbor 0.25.0
#   sandbox the local sandbox alone on the newest Harbor, 0.26.0, which no verifiers release
#           installs beside (mcp): its own tests and real Trials, without verifiers
# The lock's stack (verifiers 0.4.0 + harbor 0.24.0) is `uv run pytest`.
# Usage: bash scripts/test-stack.sh pinned|newest|sandbox [pytest arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."

stack="${1:-}"
case "$stack" in
  pinned | newest | sandbox) shift ;;
  *) echo "usage: bash scripts/test-stack.sh pinned|newest|sandbox [pytest arguments...]" >&2; exit 2 ;;
esac

VERIFIERS_COMMIT=a60a606ecc4d309247edf9ff92c3eabca362781f
VERIFIERS_VERSION=0.3.1.dev62  # `git describe` of that commit: v0.3.0-62-ga60a606ec
PRIME_RL_PYPI_DATE=2026-08-22T06:00:00Z

# verifiers as prime-rl has it, built as a wheel of version 0.3.1.dev62 (the version variable
# reaches that build only): from prime-rl's deps/verifiers submodule where checked out, else
# from the pinned source archive beside this checkout (CI), else the nearest PyPI release.
pinned_verifiers() {
  local submodule=prime-rl/deps/verifiers
  local archive=../shared/upstream/verifiers-a60a606.tar.gz
  local cache="${XDG_CACHE_HOME:-$HOME/.cache}/harbor-env/verifiers-${VERIFIERS_COMMIT:0:7}"
  local source version="$VERIFIERS_VERSION"
  if [ -f "$submodule/pyproject.toml" ]; then
    local commit
    commit="$(git -C "$submodule" rev-parse HEAD 2>/dev/null || true)"
    if [ "$commit" != "$VERIFIERS_COMMIT" ]; then
      echo "pinned stack: $submodule is at ${commit:-an unknown commit}, not $VERIFIERS_COMMIT; testing it as is" >&2
      version=""  # its own git describe
    fi
    source="$submodule"
    rm -rf "$cache/dist"  # rebuilt from the submodule every time: it may have changed
  elif [ -f "$archive" ]; then
    if [ ! -f "$cache/src/verifiers/pyproject.toml" ]; then
      rm -rf "$cache/src" "$cache/src.partial" && mkdir -p "$cache/src.partial"
      tar -xzf "$archive" -C "$cache/src.partial"
      mv "$cache/src.partial" "$cache/src"
    fi
    source="$cache/src/verifiers"
  else
    echo "pinned stack: neither $submodule nor $archive exists; verifiers 0.3.1 from PyPI instead" >&2
    VERIFIERS_REQUIREMENT="verifiers==0.3.1"
    return
  fi
  if ! ls "$cache"/dist/verifiers-*.whl >/dev/null 2>&1; then
    env ${version:+SETUPTOOLS_SCM_PRETEND_VERSION="$version"} uv build -q --wheel --out-dir "$cache/dist" "$source"
  fi
  local wheel
  wheel="$(ls "$cache"/dist/verifiers-*.whl | head -n 1)"
  echo "pinned stack: verifiers from $source ($wheel)" >&2
  VERIFIERS_REQUIREMENT="verifiers @ file://$wheel"
}

venv=".venv-$stack"
uv venv -q --allow-existing "$venv"
dev=("pytest>=8.3" "pytest-timeout>=2.3" "pytest-asyncio>=0.24")
if [ "$stack" = pinned ]; then
  pinned_verifiers
  # prime-rl's environment is given: where this project's own bounds would replace one of its
  # packages, the override keeps prime-rl's (its overrides work the same way).
  overrides="$(mktemp)"
  trap 'rm -f "$overrides"' EXIT
  printf '%s\n' "$VERIFIERS_REQUIREMENT" "renderers" "transformers==5.6.2" >"$overrides"
  VIRTUAL_ENV="$venv" uv pip install -q -e . "$VERIFIERS_REQUIREMENT" "harbor==0.21.0" "transformers==5.6.2" "${dev[@]}" \
    --override "$overrides" \
    --exclude-newer-package "renderers=$PRIME_RL_PYPI_DATE" \
    --exclude-newer-package "prime-pydantic-config=$PRIME_RL_PYPI_DATE"
elif [ "$stack" = newest ]; then
  # podman-compose: the container tests (tests/test_containers.py) run here too where podman
  # is set up (scripts/containers/setup.sh); Harbor 0.21 (pinned) has no podman environment.
  VIRTUAL_ENV="$venv" uv pip install -q -e . "verifiers==0.4.0" "harbor==0.25.0" "podman-compose==1.6.0" "${dev[@]}"
  export PATH="$PWD/$venv/bin:$PATH"
else
  # This package without its dependencies (verifiers among them): harbor_env.sandbox needs
  # Harbor only. Its tests: the sandbox's own and real Trials in it.
  VIRTUAL_ENV="$venv" uv pip install -q "harbor==0.26.0" "${dev[@]}"
  VIRTUAL_ENV="$venv" uv pip install -q --no-deps -e .
  set -- tests/test_local_sandbox.py tests/test_sandbox_hardening.py tests/test_command_server.py tests/test_trials.py tests/test_image_mode.py "$@"
fi
"$venv/bin/python" - "$stack" <<'EOF'
import importlib.metadata as m, sys
def version(name):
    try:
        return m.version(name)
    except m.PackageNotFoundError:
        return "not installed"
names = ("verifiers", "harbor", "renderers", "transformers", "prime-pydantic-config")
print(f"{sys.argv[1]} stack:", ", ".join(f"{n} {version(n)}" for n in names))
EOF
"$venv/bin/python" -m pytest "$@"
