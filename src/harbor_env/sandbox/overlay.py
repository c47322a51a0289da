"""The writable layer of a sandbox on an image: an overlay of the image's root (read-only, shared
by every sandbox on it) with an upper folder of the sandbox's own.

The overlay is mounted in a mount namespace of its own, just before bubblewrap starts, so it
exists only for that sandbox and vanishes with it, even if this process is killed. Mounting
needs root on the host; without it a sandbox on an image writes only its private folders
("copy": WORKDIR, home, /tmp, ... are copies; the rest of the image is read-only).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# $1 the image root, $2 the upper folder, $3 overlayfs's work folder (same file system as $2),
# $4 the mount point; the rest is the command to run on it.
OVERLAY_SCRIPT = (
    "lower=$1 upper=$2 work=$3 merged=$4; shift 4; "
    'mkdir -p "$upper" "$work" "$merged" && '
    'mount -t overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" harbor-env-layer "$merged" || exit 125; '
    'exec "$@"'
)
OVERLAY_TOOLS = ("unshare", "mount")


def overlay_tools() -> dict[str, str] | None:
    """Paths of the tools the overlay needs, or None where it cannot be mounted (needs root)."""
    tools = {tool: shutil.which(tool) for tool in OVERLAY_TOOLS}
    if os.geteuid() != 0 or not all(tools.values()):
        return None
    return {tool: path for tool, path in tools.items() if path}


def with_overlay(argv: list[str], *, lower: Path, upper: Path, merged: Path, unshare: str | None) -> list[str]:
    """`argv` (bubblewrap, with `merged` as its `/`) run once the overlay of `lower` and `upper` is
    mounted at `merged`; in a mount namespace of its own unless `unshare` is None (the caller's
    command already made one: the storage quota's)."""
    work = upper.parent / f"{upper.name}.work"
    namespace = [unshare, "--mount", "--propagation", "private", "--"] if unshare else []
    return [*namespace, "/bin/sh", "-c", OVERLAY_SCRIPT, "sh", str(lower), str(upper), str(work), str(merged), *argv]
