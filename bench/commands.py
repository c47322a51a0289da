"""The sandbox's command path: what one command costs, and start -> first exec -> stop.

Both command paths of the local sandbox run in this one process, interleaved round by round:
`server` (the command server forks each command: commands.py) and `nsenter` (nsenter + setpriv
per command, what every command cost before, and what hosts without root still use).

- Per command: `_run(["true"])` M times in a started sandbox. Child CPU is all CPU outside this
  process (the children it reaped, plus the command server and the children it reaped, from
  /proc); event-loop time is this process's main-thread CPU. Both divided by M.
- A realistic mix: the 19 commands one real Terminus-2 episode made (recorded by
  bench/record_commands.py: tmux control, the verifier's isolation, tar of WORKDIR and of the
  agent's logs, the tests' upload, the tests), replayed in a fresh sandbox per round.
- Start -> first exec -> stop (`exec("true")`, `stop(delete=True)`), against the floor: a bare
  `bwrap --ro-bind / / --unshare-pid --unshare-ipc --unshare-uts --unshare-net --dev /dev --proc /proc true`,
  timed in the same rounds.

Targets (issue 16): per command ≤ 1.5 ms child CPU and ≤ 0.2 ms event-loop time; start -> first
exec -> stop ≤ 3× the bare-bwrap floor.

Usage: uv run python bench/commands.py [--quick] [--out bench/results]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from harbor_env.testing.defaults import apply_environment_defaults

apply_environment_defaults()  # before verifiers and Harbor load

import common  # noqa: E402
from harbor.models.task.task import Task  # noqa: E402
from lifecycle import _environment_arguments  # noqa: E402

from harbor_env.sandbox import LocalSandbox  # noqa: E402
from harbor_env.testing.processes import tree_cpu_seconds  # noqa: E402

TASK = common.SAMPLE_TASKS / "repair-config"
MIX = Path(__file__).parent / "fixtures" / "episode_commands.json"
PATHS = ("server", "nsenter")
TARGET_CHILD_MS, TARGET_LOOP_MS, TARGET_FLOOR_RATIO = 1.5, 0.2, 3.0


def outside_cpu_seconds() -> float:
    """CPU of everything this process started: the children it reaped, and the command server
    with its agents (each with the commands it reaped)."""
    return tree_cpu_seconds(os.getpid(), include_root=False)


def sandbox(task: Task, scratch: Path, index: int, path: str) -> LocalSandbox:
    return LocalSandbox(
        **_environment_arguments(task, scratch, index),
        sandbox_dir=str(scratch / "sandboxes"),
        command_path=path,
        verifier="shared",
    )


async def per_command(task: Task, scratch: Path, index: int, path: str, count: int) -> tuple[float, float]:
    """(child CPU ms, event-loop ms) per `_run(["true"])`."""
    environment = sandbox(task, scratch, index, path)
    await environment.start(force_build=False)
    try:
        await environment._run(["true"], user=None)  # the server is up, the pages are in
        outside, loop = outside_cpu_seconds(), time.thread_time()
        for _ in range(count):
            code, _, _ = await environment._run(["true"], user=None)
            assert code == 0
        return (
            (outside_cpu_seconds() - outside) * 1000 / count,
            (time.thread_time() - loop) * 1000 / count,
        )
    finally:
        await environment.stop(delete=True)


async def episode_mix(task: Task, scratch: Path, index: int, path: str, mix: list[dict]) -> tuple[float, float]:
    """(child CPU ms, event-loop ms) for one episode's commands, replayed in a fresh sandbox."""
    environment = sandbox(task, scratch, index, path)
    await environment.start(force_build=False)
    archive = scratch / f"workdir-{index}.tar"
    try:
        outside, loop = outside_cpu_seconds(), time.thread_time()
        for command in mix:
            stdin = None
            if command["stdin"] == "bytes":
                tests = ["tar", "-C", str(task.paths.tests_dir), "-cf", "-", "."]
                stdin = subprocess.run(tests, capture_output=True, check=True).stdout
            with open(archive, "rb" if command["stdin"] == "file" else "wb") as stream:
                await environment._run(
                    command["argv"],
                    user=command["user"],
                    cwd=command["cwd"],
                    stdin=stream if command["stdin"] == "file" else stdin,
                    stdout=stream if command["stdout"] == "file" else None,
                    timeout_sec=command["timeout_sec"],
                )
        return (outside_cpu_seconds() - outside) * 1000, (time.thread_time() - loop) * 1000
    finally:
        await environment.stop(delete=True)


async def lifecycle(task: Task, scratch: Path, index: int, path: str) -> float:
    """Seconds from nothing to a first `exec("true")` and back."""
    environment = sandbox(task, scratch, index, path)
    started = time.perf_counter()
    await environment.start(force_build=False)
    try:
        result = await environment.exec("true")
    finally:
        await environment.stop(delete=True)
    assert result.return_code == 0, result
    return time.perf_counter() - started


def bare_bwrap() -> float:
    argv = [shutil.which("bwrap") or "bwrap", "--ro-bind", "/", "/", "--unshare-pid", "--unshare-ipc"]
    argv += ["--unshare-uts", "--unshare-net", "--dev", "/dev", "--proc", "/proc", "true"]
    started = time.perf_counter()
    subprocess.run(argv, check=True)
    return time.perf_counter() - started


def median_spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**FAIL**"


async def measure(quick: bool) -> dict:
    task = Task(TASK)
    mix = json.loads(MIX.read_text())
    rounds, count = (3, 100) if quick else (8, 300)
    figures: dict = {p: {"child": [], "loop": [], "mix_child": [], "mix_loop": [], "cycle": []} for p in PATHS}
    figures["bwrap"] = []
    with tempfile.TemporaryDirectory(prefix="harbor-env-bench-commands-") as tmp:
        scratch = Path(tmp)
        await lifecycle(task, scratch, -1, "server")  # warm-up: imports, page cache, the command server
        index = 0
        for _ in range(rounds):
            for path in PATHS:
                index += 1
                child, loop = await per_command(task, scratch, index, path, count)
                figures[path]["child"].append(child)
                figures[path]["loop"].append(loop)
                index += 1
                child, loop = await episode_mix(task, scratch, index, path, mix)
                figures[path]["mix_child"].append(child)
                figures[path]["mix_loop"].append(loop)
                for _ in range(3):
                    index += 1
                    figures[path]["cycle"].append(await lifecycle(task, scratch, index, path) * 1000)
                    figures["bwrap"].append(bare_bwrap() * 1000)
        leaked = common.processes_mentioning(str(scratch))
        if leaked:
            raise RuntimeError(f"processes left behind: {sorted(leaked)}")
    figures["mix_commands"] = len(mix)
    return figures


def targets(figures: dict) -> list[tuple[str, str, str, bool]]:
    """(what, measured, target, met) for the command path's targets."""
    server = figures["server"]
    child, loop = statistics.median(server["child"]), statistics.median(server["loop"])
    ratio = statistics.median(server["cycle"]) / statistics.median(figures["bwrap"])
    return [
        ("child CPU per sandbox command", f"{child:.2f} ms", f"≤ {TARGET_CHILD_MS} ms", child <= TARGET_CHILD_MS),
        ("event-loop time per sandbox command", f"{loop:.3f} ms", f"≤ {TARGET_LOOP_MS} ms", loop <= TARGET_LOOP_MS),
        (
            "start → first exec → stop, against bare bwrap",
            f"{ratio:.2f}×",
            f"≤ {TARGET_FLOOR_RATIO:g}×",
            ratio <= TARGET_FLOOR_RATIO,
        ),
    ]


async def section(out_dir: Path, quick: bool = False) -> str:
    figures = await measure(quick)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "commands.json").write_text(json.dumps(figures, indent=2))
    rows = [
        [
            path,
            median_spread(figures[path]["child"]),
            median_spread(figures[path]["loop"]),
            median_spread(figures[path]["mix_child"]),
            median_spread(figures[path]["mix_loop"]),
            median_spread(figures[path]["cycle"]),
        ]
        for path in PATHS
    ]
    rows.append(["bare bwrap (floor)", "—", "—", "—", "—", median_spread(figures["bwrap"])])
    n = figures["mix_commands"]
    ratio_child = statistics.median(figures["nsenter"]["mix_child"]) / statistics.median(figures["server"]["mix_child"])
    command = "uv run python bench/commands.py" + (" --quick" if quick else "")
    lines = [
        "### Sandbox commands",
        "",
        f"`{command}`: median (min–max) over rounds, both paths interleaved in one process.",
        "",
        common.markdown_table(
            [
                "command path",
                "child CPU ms / command",
                "event loop ms / command",
                f"child CPU ms / episode ({n} commands)",
                "event loop ms / episode",
                "start → exec → stop ms",
            ],
            rows,
        ),
        "",
        f"An episode's commands cost {ratio_child:.1f}× less CPU outside the env server through the command server.",
        "",
        common.markdown_table(
            ["target", "measured", "target", "verdict"],
            [[what, measured, target, verdict(met)] for what, measured, target, met in targets(figures)],
        ),
    ]
    return "\n".join(lines)


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("bench/commands.py compares both command paths; the command server needs root")
    common.run_section_alone(__doc__, "3 rounds of 100 commands", section)


if __name__ == "__main__":
    main()
