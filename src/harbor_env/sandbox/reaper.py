"""Leftovers of sandboxes whose owner was killed: their folders and cgroups.

A sandbox's processes die with its owner (bubblewrap's parent-death signal), but a killed
owner cannot remove the sandbox's folder (without a quota: the whole writable root) or its
cgroups. Each sandbox folder holds `owner.json`: the owner's PID, that process's start time
(so a reused PID is not mistaken for it) and the sandbox's cgroups. Every sandbox start reaps
the folders of dead owners in its sandbox directory (at most once a minute per process), and

    python -m harbor_env.sandbox.reaper [SANDBOX_DIR]

does it on demand (default: $HARBOR_ENV_SANDBOX_DIR or <tmp>/harbor-env-sandboxes). Folders
without `owner.json` (kept with `keep = true`, or not made by this code) are left alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from harbor_env.sandbox.host_files import remove_tree

OWNER_FILE = "owner.json"
REAP_INTERVAL_SEC = 60.0
_last_reaped: dict[Path, float] = {}


def default_sandbox_parent() -> Path:
    configured = os.environ.get("HARBOR_ENV_SANDBOX_DIR")
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "harbor-env-sandboxes"


def process_start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


def record_owner(sandbox_dir: Path, cgroups: list[Path]) -> None:
    owner = {"pid": os.getpid(), "start": process_start_time(os.getpid()), "cgroups": [str(g) for g in cgroups]}
    (sandbox_dir / OWNER_FILE).write_text(json.dumps(owner))


def release(sandbox_dir: Path) -> None:
    """The folder outlives its owner on purpose (kept): never reap it."""
    with contextlib.suppress(FileNotFoundError):
        (sandbox_dir / OWNER_FILE).unlink()


def _owner_dead(owner: dict) -> bool:
    pid = owner.get("pid")
    return not isinstance(pid, int) or process_start_time(pid) != owner.get("start")


def _remove_cgroup(group: Path) -> None:
    with contextlib.suppress(OSError):
        for pid in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
    for _ in range(100):
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)


def reap(parent: Path) -> list[Path]:
    """Remove the sandboxes under `parent` whose owner is dead; return their folders."""
    reaped = []
    with contextlib.suppress(FileNotFoundError):
        for sandbox_dir in parent.iterdir():
            try:
                owner = json.loads((sandbox_dir / OWNER_FILE).read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(owner, dict) or not _owner_dead(owner):
                continue
            for group in owner.get("cgroups", []):
                # Only the sandbox's own groups (named as its folder), under the cgroup mount.
                if Path(group).parts[1:4] == ("sys", "fs", "cgroup") and Path(group).name == sandbox_dir.name:
                    _remove_cgroup(Path(group))
            remove_tree(sandbox_dir)
            reaped.append(sandbox_dir)
    return reaped


def reap_now_and_then(parent: Path) -> list[Path]:
    """`reap`, at most every REAP_INTERVAL_SEC per parent and process."""
    now = time.monotonic()
    if now - _last_reaped.get(parent, -REAP_INTERVAL_SEC) < REAP_INTERVAL_SEC:
        return []
    _last_reaped[parent] = now
    return reap(parent)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0].startswith("-")):
        print("usage: python -m harbor_env.sandbox.reaper [SANDBOX_DIR]", file=sys.stderr)
        return 2
    parent = Path(args[0]) if args else default_sandbox_parent()
    reaped = reap(parent)
    for sandbox_dir in reaped:
        print(f"reaped {sandbox_dir}")
    print(f"{len(reaped)} sandbox(es) of dead owners reaped under {parent}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
