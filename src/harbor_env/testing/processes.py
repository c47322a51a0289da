"""Readings from /proc: which processes a run left, and what CPU and memory each part used
(independent of how busy the shared machine is)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from harbor_env.sandbox.commands import SERVER_PROGRAM

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def command_line(pid: int | str) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()


def _stat_fields(path: str) -> list[str]:
    return Path(path).read_text().rpartition(")")[2].split()  # fields from the 3rd (state) on


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """CPU time (user + system) of a process, all its threads, or of one of its threads."""
    fields = _stat_fields(f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat")
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children_cpu_seconds(pid: int) -> float:
    """CPU time of a process's children that it has reaped (e.g. the sandboxes' processes)."""
    fields = _stat_fields(f"/proc/{pid}/stat")
    return (int(fields[13]) + int(fields[14])) / CLOCK_TICKS


def tree_cpu_seconds(root: int, *, include_root: bool = True) -> float:
    """CPU time of a process tree: each live process's own and its reaped children's. A process
    that ends moves its CPU into its parent's reaped-children count, so nothing is counted twice;
    the live command server and its agents (which no runner reaps mid-run) are counted too."""
    total = 0.0
    for pid in {root} | descendant_pids(root):
        with contextlib.suppress(OSError):  # ended since the scan
            total += children_cpu_seconds(pid) + (cpu_seconds(pid) if include_root or pid != root else 0.0)
    return total


CPUACCT = Path("/sys/fs/cgroup/cpuacct")


class CpuAccount:
    """A cgroup v1 cpuacct group that a runner process is put in, with all it starts later: its
    CPU, the sandboxes' included. Exact where /proc is not: a process killed with its sandbox
    (the tmux server, say) is reaped inside the dying PID namespace, and its CPU never reaches
    any /proc counter of the tree above it. The local sandbox's own groups are memory, cpu and
    pids, so its processes stay in this one."""

    def __init__(self, group: Path):
        self.group = group

    @classmethod
    def create(cls, name: str) -> CpuAccount | None:
        """None where this host has no writable cpuacct v1 hierarchy (then use tree_cpu_seconds)."""
        if not (CPUACCT / "cpuacct.usage").is_file():
            return None
        group = CPUACCT / f"harbor-env-bench-{os.getpid()}-{name}"
        try:
            group.mkdir()
        except OSError:
            return None
        return cls(group)

    def add(self, pid: int) -> None:
        (self.group / "cgroup.procs").write_text(str(pid))

    def seconds(self) -> float:
        return int((self.group / "cpuacct.usage").read_text()) / 1e9

    def remove(self) -> None:
        """Move what is left to the parent group, then remove this one."""
        with contextlib.suppress(OSError):
            for pid in (self.group / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (CPUACCT / "cgroup.procs").write_text(pid)
            self.group.rmdir()


@contextlib.contextmanager
def runner_cpu(name: str, pid: int) -> Iterator[Callable[[], float]]:
    """A reader of the CPU seconds of `pid` and everything it starts from now on: through a
    CpuAccount where the host has one, else tree_cpu_seconds (which misses processes killed with
    their sandbox)."""
    account = CpuAccount.create(name)
    if account is None:
        yield lambda: tree_cpu_seconds(pid)
        return
    try:
        account.add(pid)
        yield account.seconds
    finally:
        account.remove()


def machine_busy_seconds() -> float:
    """CPU time all cores spent on anything but idle (this run and whatever else runs)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / CLOCK_TICKS  # minus idle and iowait


def processes_mentioning(text: str) -> set[int]:
    """PIDs whose command line contains `text` (e.g. a run's sandbox folder)."""
    found = set()
    for pid in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            if pid.isdigit() and text in command_line(pid):
                found.add(int(pid))
    return found


def leak_notes(sandboxes: Path) -> list[str]:
    """What a run left behind under its sandbox folder: processes and folders (none is right)."""
    leaked = processes_mentioning(str(sandboxes))
    folders = list(sandboxes.iterdir()) if sandboxes.exists() else []
    return [f"leak: {len(leaked)} processes, {len(folders)} folders under {sandboxes}"] if leaked or folders else []


def pid_namespace(pid: int | str) -> str | None:
    with contextlib.suppress(OSError):
        return os.readlink(f"/proc/{pid}/ns/pid")
    return None


def processes_in(namespace: str) -> list[int]:
    """Host PIDs of the processes living in a PID namespace."""
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and pid_namespace(p) == namespace]


def foreign_processes() -> set[tuple[int, str]]:
    """Processes in another PID namespace than ours, plus bwrap/nsenter/tmux anywhere."""
    ours = pid_namespace("self")
    found = set()
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = command_line(p)
            if pid_namespace(p) != ours or any(t in cmdline for t in ("bwrap", "nsenter", "tmux")):
                found.add((int(p), cmdline))
    return found


def descendant_processes(root: int | None = None) -> set[tuple[int, str]]:
    """This process's descendants (env servers, sandboxes and what runs in them), so that other
    work on a shared machine does not count."""
    parents = parent_pids()
    described = set()
    for pid in descendant_pids(root or os.getpid(), parents):
        with contextlib.suppress(OSError):
            described.add((pid, command_line(pid)))
    # Not a command server: one lives as long as the process that started it (its own test checks
    # that it ends with it). Its agents (children with the same command line) end with their
    # sandboxes: those count.
    servers = {pid for pid, cmdline in described if _is_command_server(cmdline)}
    return {(pid, cmdline) for pid, cmdline in described if pid not in servers or parents.get(pid) in servers}


def _is_command_server(cmdline: str) -> bool:
    return str(SERVER_PROGRAM) in cmdline


def parent_pids() -> dict[int, int]:
    """Every process's parent PID, from one pass over /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if entry.isdigit():
                parents[int(entry)] = int(_stat_fields(f"/proc/{entry}/stat")[1])
    return parents


def descendant_pids(root: int, parents: dict[int, int] | None = None) -> set[int]:
    """Every process below `root` (from `parents`, else a fresh parent_pids())."""
    parents = parent_pids() if parents is None else parents
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def children_of(pid: int) -> list[int]:
    """The PIDs whose parent is `pid`."""
    return [child for child, parent in parent_pids().items() if parent == pid]


def alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        return _stat_fields(f"/proc/{pid}/stat")[0] != "Z"
    except OSError:
        return False
