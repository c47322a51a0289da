"""Memory, CPU and process limits for a sandbox, through a cgroup of its own.

cgroup v2 is used where the unified hierarchy has the controllers and this process may create
child groups; otherwise the v1 controllers (memory, cpu, pids) where they are mounted and
writable. A limit that neither can enforce is reported once by the caller, never silently
dropped. Every process of a sandbox is placed into the group before it runs anything
(see :meth:`CgroupLimits.wrap`), so children inherit it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
_GROUP_PARENT = "harbor-env"
CPU_PERIOD_US = 100_000
# The controller behind each limit.
_CONTROLLER_FIELDS = {"memory": "memory_mb", "cpu": "cpus", "pids": "pids"}

# Moves the shell ($$) into the groups whose cgroup.procs are its next $n arguments.
JOIN_GROUPS = 'while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done'
# `sh` joins the cgroups named by its first N arguments, then becomes the real command.
_JOIN_AND_EXEC = f'n=$1; shift; {JOIN_GROUPS}; exec "$@"'


@dataclass(frozen=True)
class Limits:
    memory_mb: int | None = None
    cpus: float | None = None
    pids: int | None = None

    def requested(self) -> dict[str, object]:
        return {k: v for k, v in vars(self).items() if v is not None}


def sandbox_limits(*, enforce: bool, pids: int | None, memory_mb: int | None, cpus: float | None) -> Limits:
    """The limits of one sandbox: the task's memory and cpus when enforced, always the pids cap."""
    if not enforce:
        return Limits(pids=pids)
    return Limits(memory_mb=memory_mb, cpus=cpus, pids=pids)


def cgroup_files(limits: Limits, *, version: int) -> dict[str, dict[str, str]]:
    """What a group of cgroup `version` (1 or 2) is given for `limits`: {controller: {file: value}}."""
    files: dict[str, dict[str, str]] = {}
    if limits.memory_mb is not None:
        size = str(limits.memory_mb * 1024 * 1024)
        files["memory"] = {"memory.max": size} if version == 2 else {"memory.limit_in_bytes": size}
    if limits.cpus is not None:
        quota = int(limits.cpus * CPU_PERIOD_US)
        files["cpu"] = (
            {"cpu.max": f"{quota} {CPU_PERIOD_US}"}
            if version == 2
            else {"cpu.cfs_period_us": str(CPU_PERIOD_US), "cpu.cfs_quota_us": str(quota)}
        )
    if limits.pids is not None:
        files["pids"] = {"pids.max": str(limits.pids)}
    return files


def unenforced(limits: Limits, cgroup: CgroupLimits | None) -> list[str]:
    """The requested limits that `cgroup` (None: no group could be made) does not enforce."""
    enforced = cgroup.enforced if cgroup is not None else set()
    return sorted(set(limits.requested()) - enforced)


def _own_cgroup(controller: str | None) -> str | None:
    """This process's group path in the v2 hierarchy (None) or a v1 controller's."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if (controller is None and controllers == "") or (controller and controller in controllers.split(",")):
            return path
    return None


class CgroupLimits:
    """The cgroup(s) of one sandbox. Create with :meth:`create`; always :meth:`destroy`."""

    def __init__(self, groups: list[Path], enforced: set[str], version: int):
        self.groups = groups
        self.enforced = enforced
        self.version = version

    @classmethod
    def create(cls, name: str, limits: Limits) -> CgroupLimits | None:
        """A group enforcing as many of `limits` as the host allows, or None if none."""
        if not limits.requested():
            return None
        for make in (cls._create_v2, cls._create_v1):
            with contextlib.suppress(OSError, ValueError):
                made = make(name, limits)
                if made is not None:
                    return made
        return None

    @classmethod
    def _create_v2(cls, name: str, limits: Limits) -> CgroupLimits | None:
        if not (CGROUP_ROOT / "cgroup.controllers").exists():
            return None
        own = _own_cgroup(None)
        if own is None:
            return None
        parent = CGROUP_ROOT / own.lstrip("/") / _GROUP_PARENT
        parent.mkdir(exist_ok=True)
        available = set((parent / "cgroup.controllers").read_text().split())
        wanted = set(_CONTROLLER_FIELDS) & available
        if not wanted:
            return None
        (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in sorted(wanted)))
        group = parent / name
        group.mkdir()
        made = cls([group], set(), 2)
        try:
            for controller, files in cgroup_files(limits, version=2).items():
                if controller not in wanted:
                    continue
                for file, value in files.items():
                    (group / file).write_text(value)
                if controller == "memory":
                    # Swap would stretch the limit; not every kernel has the file (no swap accounting).
                    with contextlib.suppress(OSError):
                        (group / "memory.swap.max").write_text("0")
                made.enforced.add(_CONTROLLER_FIELDS[controller])
        except OSError:
            made.destroy()
            raise
        return made

    @classmethod
    def _create_v1(cls, name: str, limits: Limits) -> CgroupLimits | None:
        made = cls([], set(), 1)
        for controller, files in cgroup_files(limits, version=1).items():
            own = _own_cgroup(controller)
            mount = CGROUP_ROOT / controller
            if own is None or not mount.is_dir():
                continue
            group = mount / own.lstrip("/") / _GROUP_PARENT / name
            try:
                group.mkdir(parents=True)
                made.groups.append(group)
                for file, value in files.items():
                    (group / file).write_text(value)
            except OSError:
                continue
            made.enforced.add(_CONTROLLER_FIELDS[controller])
        if not made.groups:
            return None
        return made

    @property
    def procs(self) -> list[str]:
        """The groups' cgroup.procs files: writing a PID there moves that process in."""
        return [str(g / "cgroup.procs") for g in self.groups]

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv`, started inside this sandbox's groups."""
        procs = self.procs
        return ["/bin/sh", "-c", _JOIN_AND_EXEC, "sh", str(len(procs)), *procs, *argv]

    def _members(self) -> set[int]:
        members: set[int] = set()
        for group in self.groups:
            with contextlib.suppress(OSError):
                members |= {int(p) for p in (group / "cgroup.procs").read_text().split()}
        return members

    def destroy(self, timeout: float = 5.0) -> None:
        """Kill whatever is left in the groups and remove them."""
        deadline = time.monotonic() + timeout
        for group in self.groups:
            if self.version == 2 and (group / "cgroup.kill").exists():
                with contextlib.suppress(OSError):
                    (group / "cgroup.kill").write_text("1")
        while True:
            members = self._members()
            for pid in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            removed = True
            for group in self.groups:
                try:
                    group.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    removed = False
            if removed or time.monotonic() > deadline:
                return
            time.sleep(0.01)
