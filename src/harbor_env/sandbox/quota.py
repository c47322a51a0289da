"""The storage quota: a sandbox's writable root as a tmpfs of the task's storage_mb.

The tmpfs is mounted in a mount namespace of its own (so it vanishes with the sandbox, even if
this process is killed) and filled with what the host prepared; writing more fails with ENOSPC.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from harbor_env.sandbox.limits import JOIN_GROUPS

VERIFIER_ROOM_MB = 512  # /tests and /logs/verifier each, beside the quota (memory only as used)
# $1 size, $2 the tmpfs mount point, $3 the prepared root, $4 a count n; the next n arguments
# are cgroup.procs files the shell joins, the rest is the command to run. The first move into
# a cgroup v1 group waits for an RCU grace period (~7 ms here, nearly no CPU), so a background
# subshell moves this shell ($$) while it mounts and copies; it waits for that before the exec.
# mount and cp may start outside the groups: they are ours and end before the command starts.
QUOTA_ROOT_SCRIPT = (
    "size=$1 quota=$2 root=$3 n=$4; shift 4; "
    f"({JOIN_GROUPS}) & joining=$!; "
    'mount -t tmpfs -o "size=$size,mode=755" harbor-env-quota "$quota" || exit; '
    # The verifier's inputs and outputs have their own room: an agent that fills the quota would
    # otherwise make the upload of the tests fail, an errored episode GRPO drops. Mounted before
    # the copy, so that what the root holds there (tests baked into a verifier's image) fills it.
    'for own in tests logs/verifier; do [ -d "$root/$own" ] || continue; mkdir -p "$quota/$own" && '
    f'mount -t tmpfs -o "size={VERIFIER_ROOM_MB}m,mode=$(stat -c %a "$root/$own")" harbor-env-verifier "$quota/$own" '
    "|| exit; done; "
    'cp -a "$root/." "$quota/" || exit; '
    'wait "$joining" || exit 125; shift "$n"; exec "$@"'
)
QUOTA_TOOLS = ("unshare", "mount", "cp")


def quota_tools() -> dict[str, str] | None:
    """Paths of the tools the quota needs, or None where it cannot be mounted (needs root)."""
    tools = {tool: shutil.which(tool) for tool in QUOTA_TOOLS}
    if os.geteuid() != 0 or not all(tools.values()):
        return None
    return {tool: path for tool, path in tools.items() if path}


def with_storage_quota(
    argv: list[str], *, unshare: str, storage_mb: int, quota: Path, root: Path, cgroup_procs: Sequence[str] = ()
) -> list[str]:
    """`argv` (bubblewrap, with `quota` as its `/`) run on a tmpfs of `storage_mb` at `quota`, filled from `root`,
    inside the cgroups of `cgroup_procs` (their cgroup.procs files)."""
    return [
        unshare,
        "--mount",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
        QUOTA_ROOT_SCRIPT,
        "sh",
        f"{storage_mb}m",
        str(quota),
        str(root),
        str(len(cgroup_procs)),
        *cgroup_procs,
        *argv,
    ]
