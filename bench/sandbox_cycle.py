"""Where a sandbox's start -> first exec -> stop goes: per-phase wall time, against bare bwrap.

The same cycle as bench/commands.py's (`start()`, `exec("true")`, `stop(delete=True)` on the
command server path), timed as a whole and by phase, interleaved round by round with the floor:
a bare `bwrap --ro-bind / / --unshare-pid --unshare-ipc --unshare-uts --unshare-net --dev /dev
--proc /proc true`. Phases are timed by wrapping the sandbox's own steps in this process only
(nothing in the product is instrumented); a phase inside another is indented under it.

Usage: uv run python bench/sandbox_cycle.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import inspect
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from harbor_env.testing.defaults import apply_environment_defaults

apply_environment_defaults()  # before verifiers and Harbor load

import common  # noqa: E402
from commands import TARGET_FLOOR_RATIO, TASK, bare_bwrap, lifecycle  # noqa: E402
from harbor.models.task.task import Task  # noqa: E402

from harbor_env.sandbox import exec as sandbox_exec  # noqa: E402
from harbor_env.sandbox import init, limits, local, reaper  # noqa: E402
from harbor_env.sandbox.commands import SandboxCommands  # noqa: E402
from harbor_env.sandbox.filesystem import RootFilesystem  # noqa: E402

# (label, owner, attribute): each is timed wherever it is called from; labels nest by indent.
PHASES = [
    ("start", local.LocalSandbox, "start"),
    ("  host tools", local, "require_tools"),
    ("  Dockerfile", local.LocalSandbox, "_read_layout"),
    ("  reaper pass", reaper, "reap_now_and_then"),
    ("  owner record", reaper, "record_owner"),
    ("  limits", local.LocalSandbox, "_apply_limits"),
    ("    cgroups: create", limits.CgroupLimits, "create"),
    ("  file system: plan + private root", local.LocalSandbox, "_plan_filesystem"),
    ("  init: spawn", local.LocalSandbox, "_spawn_init"),
    ("    bwrap arguments", RootFilesystem, "bwrap_args"),
    ("    bwrap + init shell until ready", init.SandboxInit, "start"),
    ("  upload environment dir", local.LocalSandbox, "_upload_environment_dir_after_start"),
    ("exec", local.LocalSandbox, "exec"),
    ("  agent start", sandbox_exec.SandboxExec, "_agent"),
    ("  command", SandboxCommands, "run"),
    ("stop", local.LocalSandbox, "stop"),
    ("  init: kill + wait", init.SandboxInit, "stop"),
    ("  cgroups: destroy", limits.CgroupLimits, "destroy"),
    ("  teardown (all)", local.LocalSandbox, "_teardown"),
]


def timed(function: Callable, into: list[float]) -> Callable:
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def run_async(*args, **kwargs):
            started = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                into.append((time.perf_counter() - started) * 1000)

        return run_async

    @functools.wraps(function)
    def run(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            into.append((time.perf_counter() - started) * 1000)

    return run


def instrument() -> dict[str, list[float]]:
    """Wrap every phase; returns the list each one's durations (ms) land in."""
    durations: dict[str, list[float]] = defaultdict(list)
    for label, owner, name in PHASES:
        raw = inspect.getattr_static(owner, name)
        wrapped_kind = type(raw) if isinstance(raw, (classmethod, staticmethod)) else None
        function = raw.__func__ if wrapped_kind else raw
        replacement = timed(function, durations[label])
        setattr(owner, name, wrapped_kind(replacement) if wrapped_kind else replacement)
    # local.py imported reap_now_and_then through the module: patched above.
    return durations


async def measure(rounds: int) -> tuple[list[float], list[float], dict[str, list[float]]]:
    task = Task(TASK)
    cycles: list[float] = []
    floors: list[float] = []
    with tempfile.TemporaryDirectory(prefix="harbor-env-bench-cycle-") as tmp:
        scratch = Path(tmp)
        await lifecycle(task, scratch, -1, "server")  # warm-up: imports, page cache, the command server
        durations = instrument()
        for index in range(rounds):
            cycles.append(await lifecycle(task, scratch, index, "server") * 1000)
            floors.append(bare_bwrap() * 1000)
        leaked = common.processes_mentioning(str(scratch))
        if leaked:
            raise RuntimeError(f"processes left behind: {sorted(leaked)}")
    return cycles, floors, durations


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("bench/sandbox_cycle.py runs the command server path, which needs root")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    cycles, floors, durations = asyncio.run(measure(args.rounds))
    rows = [
        [
            label.replace(" ", "\u00a0"),
            f"{statistics.median(v):.2f}",
            f"{sum(v) / args.rounds:.2f}",
            len(v) // args.rounds,
        ]
        for label, v in ((label, durations[label]) for label, _, _ in PHASES)
        if v
    ]
    cycle, floor = statistics.median(cycles), statistics.median(floors)
    print(f"`uv run python bench/sandbox_cycle.py --rounds {args.rounds}`\n")
    print(common.markdown_table(["phase", "median ms", "mean ms / cycle", "calls / cycle"], rows))
    print()
    print(
        common.markdown_table(
            ["start → exec → stop ms", "bare bwrap ms", "ratio", "target"],
            [[f"{cycle:.2f}", f"{floor:.2f}", f"{cycle / floor:.2f}×", f"≤ {TARGET_FLOOR_RATIO:g}×"]],
        )
    )


if __name__ == "__main__":
    main()
