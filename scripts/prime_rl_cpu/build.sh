#!/usr/bin/env bash
# Build (once) a CPU-only Python environment in which prime-rl's real `orchestrator`, `env-server`
# and `rl --dry-run` run, from the pinned sources, and print its folder on stdout.
#
#   bash scripts/prime_rl_cpu/build.sh      # -> ~/.cache/harbor-env/prime-rl-cpu/<commit>-<recipe>
#
# Sources: the `prime-rl/` submodule where it is checked out, else the archives in
# ../shared/upstream/ (machines that reach package registries but not git hosts). They are copied
# into the cache folder; prime-rl's own files are never changed. A plain `uv sync` of prime-rl
# cannot work on such a machine (torch from PyTorch's index; vLLM, torchtitan, dion, fla, torchao
# and nixl from git/URL sources), so the packages the orchestrator and env server import are
# installed from PyPI pinned to prime-rl's own uv.lock, with the GPU-only ones left out. The
# folder name carries the commit and a hash of this recipe: reruns reuse it; a changed recipe
# builds afresh.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
here="$repo/scripts/prime_rl_cpu"
cd "$repo"   # uv finds the project's Python 3.12 (.python-version) from here
export UV_PYTHON_DOWNLOADS=never
log() { echo "prime-rl-cpu: $*" >&2; }

upstream="${HARBOR_ENV_UPSTREAM:-$repo/../shared/upstream}"
if [ -f prime-rl/pyproject.toml ] && [ -f prime-rl/deps/verifiers/pyproject.toml ]; then
  commit="$(git -C prime-rl rev-parse HEAD)"
  source="submodule"
else
  archive="$(ls "$upstream"/prime-rl-*.tar.gz 2>/dev/null | head -n1 || true)"
  verifiers_archive="$(ls "$upstream"/verifiers-*.tar.gz 2>/dev/null | head -n1 || true)"
  if [ -z "$archive" ] || [ -z "$verifiers_archive" ]; then
    log "no prime-rl sources: check out the submodule (bash scripts/setup-prime-rl.sh) or put" \
        "prime-rl-<commit>.tar.gz and verifiers-<commit>.tar.gz in $upstream (HARBOR_ENV_UPSTREAM)"
    exit 2
  fi
  commit="$(basename "$archive" .tar.gz)"; commit="${commit#prime-rl-}"
  source="archives"
fi
recipe="$(cat "$here/build.sh" "$here/cpu_imports.py" | sha256sum | cut -c1-12)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/harbor-env/prime-rl-cpu"
target="$cache/${commit:0:8}-$recipe"

# Built in place (editable installs and scripts hold absolute paths), under a lock so two runs
# never build the same folder at once; a build that did not finish is thrown away.
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -f "$target/.complete" ]; then log "reusing $target"; echo "$target"; exit 0; fi
started=$SECONDS
build="$target"
rm -rf "$build" && mkdir -p "$build"
trap 'rm -rf "$build"' EXIT
log "building from the $source ($commit) in $build"

# 1. Sources.
if [ "$source" = submodule ]; then
  mkdir -p "$build/prime-rl" "$build/verifiers"
  git -C prime-rl archive HEAD | tar -x -C "$build/prime-rl"
  git -C prime-rl/deps/verifiers archive HEAD | tar -x -C "$build/verifiers"
  # hatch-vcs would take the version from git; v0.3.0-62-ga60a606ec -> 0.3.1.dev62 as it does.
  described="$(git -C prime-rl/deps/verifiers describe --tags 2>/dev/null || true)"
  verifiers_version="0.3.1.dev62"
  if [[ "$described" =~ ^v([0-9]+)\.([0-9]+)\.([0-9]+)-([0-9]+)-g ]]; then
    verifiers_version="${BASH_REMATCH[1]}.${BASH_REMATCH[2]}.$((BASH_REMATCH[3] + 1)).dev${BASH_REMATCH[4]}"
  fi
else
  tar -xzf "$archive" -C "$build"
  tar -xzf "$verifiers_archive" -C "$build"
  verifiers_version="0.3.1.dev62"   # git describe of a60a606 (the archive has no .git): see upstream/README.md
fi

# 2. Constraints: every name==version of prime-rl's lock except the CUDA/GPU-only packages
#    (torch comes from PyPI below: its build runs on CPU).
env -u UV_LOCKED uv --directory "$build/prime-rl" export --frozen --no-hashes --all-packages --no-emit-workspace --no-dev 2>/dev/null \
  | grep -E '^[A-Za-z0-9._-]+==' | sed 's/ *;.*//' \
  | grep -viE '^(torch|torchvision|torchaudio|triton|vllm|xformers|flashinfer[a-z0-9_-]*|nvidia-[a-z0-9_-]+|cuda-[a-z0-9_-]+|deep-[a-z0-9_-]+|mooncake[a-z0-9_-]*)==' \
  > "$build/constraints.txt"

# 3. The environment.
uv venv -q -p 3.12 "$build/venv"
export VIRTUAL_ENV="$build/venv"
uv pip install -q "torch==2.11.0"
# renderers and prime-pydantic-config are prime-rl submodules (deps/); their PyPI releases as of
# the pinned commit's date stand in for them. The rest: what the orchestrator, env server and the
# Harbor environment import (some undeclared by prime-rl or imported only at run time).
SETUPTOOLS_SCM_PRETEND_VERSION="$verifiers_version" uv pip install -q -c "$build/constraints.txt" \
  --exclude-newer-package renderers=2026-08-22T06:00:00Z \
  --exclude-newer-package prime-pydantic-config=2026-08-22T06:00:00Z \
  -e "$build/verifiers[harbor]" -e "$build/prime-rl/packages/prime-rl-configs" \
  renderers "prime-pydantic-config[toml]" "transformers==5.6.2" harbor \
  datasets pyarrow pandas msgspec pyzmq orjson loguru rich setproctitle uvloop jaxtyping beartype tenacity \
  aiolimiter openai pybase64 numpy wandb grpcio protobuf prime wandb-workspaces prometheus-client psutil \
  pytest pytest-timeout pytest-asyncio
uv pip install -q --no-deps -e "$build/prime-rl" "modelexpress==0.3.0"

# 4. The import workaround (cpu_imports.py says why), loaded at interpreter start by a .pth file.
site="$("$build/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
cp "$here/cpu_imports.py" "$site/harbor_env_prime_rl_cpu_imports.py"
echo "import harbor_env_prime_rl_cpu_imports" > "$site/harbor_env_prime_rl_cpu_imports.pth"

"$build/venv/bin/python" -c 'import prime_rl.orchestrator.orchestrator, verifiers.v1, harbor'
trap - EXIT
touch "$target/.complete"
# A build from an earlier recipe of this commit is superseded by this one (5 GB each).
for old in "$cache/${commit:0:8}"-*; do [ "$old" = "$target" ] || rm -rf "$old"; done
log "built $target in $((SECONDS - started)) s"
echo "$target"
