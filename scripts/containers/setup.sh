#!/usr/bin/env bash
# Make this machine run Harbor's podman environment offline, as CI does (docs/containers.md):
# podman from Debian, podman-compose from PyPI (Harbor passes flags Debian's 1.0.3 lacks; it is
# in the project's dev dependencies), the ulimit defaults a machine without CAP_SYS_RESOURCE
# needs, and base images built from Debian's packages (no image registry is reachable here).
# Idempotent: a warm machine finds everything in place and spends a few seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
need=()
for pair in podman:podman mmdebstrap:mmdebstrap newuidmap:uidmap; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The base image: Debian bookworm (minbase) with what Terminus-2 drives (bash, tmux) and what
# Terminal-Bench-style tests use (python3). Tagged under the names the sample tasks' FROM lines use.
# Keyed by the recipe's hash: a changed recipe builds a new image, an unchanged one is reused.
BASE_PACKAGES="python3,python-is-python3,tmux,ca-certificates,procps"
BASE_TAGS="docker.io/library/debian:bookworm docker.io/library/debian:bookworm-slim docker.io/library/python:3.12-slim-bookworm"
recipe_hash=$(printf '%s\n' "minbase" "bookworm" "$BASE_PACKAGES" | sha256sum | cut -c1-16)
base="localhost/harbor-env/base:$recipe_hash"

probe() { podman run --rm --network none "$1" true 2>&1; }

if ! podman image exists "$base"; then
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/harbor-env/base-images"
  mkdir -p "$cache"
  tarball="$cache/$recipe_hash.tar"
  if [ ! -s "$tarball" ]; then
    echo "building the base image $base from Debian's packages (mmdebstrap, ~30 s)"
    mmdebstrap --quiet --variant=minbase --include="$BASE_PACKAGES" bookworm "$cache/$recipe_hash.partial.tar" \
      http://deb.debian.org/debian
    mv "$cache/$recipe_hash.partial.tar" "$tarball"
  fi
  podman import --quiet --change 'CMD ["bash"]' "$tarball" "$base" >/dev/null
fi
for tag in $BASE_TAGS; do podman tag "$base" "$tag"; done

# Two defaults fail on a VM like this one (cgroup v1 beside a v2 mount, no CAP_SYS_RESOURCE):
# crun refuses hybrid cgroups (runc runs there), and the OCI runtime cannot raise the default
# ulimits to the hard limits ("setrlimit RLIMIT_NOFILE" with crun, "rlimit type 7" with runc).
# containers.conf gets only the settings whose failure was seen, once each.
conf=/etc/containers/containers.conf
for _ in 1 2 3; do
  out=$(probe "$base") && break
  if grep -qi "hybrid mode" <<<"$out" && ! grep -qs '^runtime' "$conf"; then
    echo "crun cannot run containers here: podman uses runc ($conf)"
    command -v runc >/dev/null || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends runc >/dev/null
    printf '[engine]\nruntime = "runc"\n' | $SUDO tee -a "$conf" >/dev/null
  elif grep -qi rlimit <<<"$out" && ! grep -qs default_ulimits "$conf"; then
    echo "podman cannot raise ulimits here: lower defaults ($conf)"
    printf '[containers]\ndefault_ulimits = ["nofile=16384:16384", "nproc=32768:32768"]\n' | $SUDO tee -a "$conf" >/dev/null
  else
    break
  fi
done
if ! out=$(probe "$base"); then
  echo "podman cannot run a container here: $out" >&2
  exit 1
fi
echo "podman $(podman --version | awk '{print $3}') ready; base image $base"
