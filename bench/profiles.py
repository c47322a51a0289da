"""py-spy profiles of the env server and the benchmark process: where the event loop's time goes.

Used by bench/scaling.py at its saturated concurrency.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from common import markdown_table

PROFILE_RATE = 100  # samples per second
# A thread whose innermost frame is one of these is waiting, not working.
IDLE_FRAMES = (
    "EpollSelector.select (selectors.py)",
    "_worker (concurrent/futures/thread.py)",
    "Condition.wait (threading.py)",
    "Event.wait (threading.py)",
)
# Where the env server's event loop goes (inclusive: nested entries are part of the ones above).
COST_CENTRES = (
    ("Terminus-2's turn loop (Harbor)", "Terminus2._run_agent_loop"),
    ("verifiers' interception: render, tokenize, generate, parse", "InterceptionServer.handle_request"),
    ("Trial.create (Harbor)", "Trial.create"),
    ("- the agent's model calls, HTTP client side (harbor_env interception_llm.py)", "InterceptionLLM.call"),
    ("sandbox commands (harbor_env LocalSandbox.exec)", "SandboxExec.exec"),
    ("Harbor's verifier", "Verifier.verify"),
    ("trace deltas to the client (verifiers)", "DeltaStreamer.flush"),
    ("verifier-input guard (harbor_env harness.py)", "guard_verifier_inputs"),
)


def is_idle(frame: str) -> bool:
    """Whether an innermost frame is a wait (short or full file names, with or without a line)."""
    name, _, where = frame.partition(" (")
    where = re.sub(r":\d+\)$", ")", "(" + where)
    return any(name == idle_name and where.endswith(idle_where.lstrip("(")) for idle_name, idle_where in _IDLE)


_IDLE = [(f.partition(" ")[0], f.partition(" ")[2]) for f in IDLE_FRAMES]


def read_profile(path: Path) -> list[tuple[str, list[str], int]]:
    """py-spy's raw (collapsed) stacks: (thread name, frames outermost first, samples)."""
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        stacks.append((frames[0].partition("): ")[2] or frames[0], frames[1:], int(count)))
    return stacks


@dataclass
class ThreadProfile:
    """One thread's samples, so that each cost can be read as a share of its wall time."""

    samples: int  # all samples of the thread, idle ones included
    busy: int
    inclusive: collections.Counter[str]  # frame -> busy samples with it on the stack
    leaves: collections.Counter[str]  # innermost frame -> busy samples

    def share(self, count: int) -> float:
        """A sample count as a fraction of the thread's wall time."""
        return count / self.samples if self.samples else 0.0

    def matching(self, fragment: str) -> float:
        return self.share(max((n for frame, n in self.inclusive.items() if fragment in frame), default=0))


def thread_profiles(path: Path) -> dict[str, ThreadProfile]:
    threads: dict[str, ThreadProfile] = {}
    for thread, frames, count in read_profile(path):
        profile = threads.setdefault(thread, ThreadProfile(0, 0, collections.Counter(), collections.Counter()))
        profile.samples += count
        if not frames or is_idle(frames[-1]):
            continue
        profile.busy += count
        profile.leaves[frames[-1]] += count
        for frame in set(frames):
            profile.inclusive[frame] += count
    return threads


def merged(threads: dict[str, ThreadProfile], prefix: str) -> tuple[float, int]:
    """Summed busy share (in cores) and count of the threads whose name starts with `prefix`."""
    chosen = [t for name, t in threads.items() if name.startswith(prefix)]
    return sum(t.share(t.busy) for t in chosen), len(chosen)


@contextlib.asynccontextmanager
async def sampling(pid: int, output: Path) -> AsyncIterator[Path]:
    """`py-spy record` on `pid` for the length of the block: busy samples of every thread, with
    full file names (whose code each frame is), raw stacks to `output`."""
    recorder = await asyncio.create_subprocess_exec(
        _py_spy(),
        "record",
        "--pid",
        str(pid),
        "--rate",
        str(PROFILE_RATE),
        "--format",
        "raw",
        "--full-filenames",
        "--output",
        str(output),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield output
    finally:
        recorder.send_signal(signal.SIGINT)  # py-spy writes what it sampled, then exits
        _, stderr = await recorder.communicate()
        if not output.is_file():
            raise RuntimeError(f"py-spy failed: {stderr.decode(errors='replace')[-500:]}")


def _py_spy() -> str:
    return shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))


async def record_profiles(targets: dict[str, int], out_dir: Path, seconds: int) -> dict[str, Path]:
    """`py-spy record` on each process at once (all threads, idle samples too), raw stacks to out_dir."""
    outputs = {name: out_dir / f"profile-{name}.txt" for name in targets}
    recorders = [
        await asyncio.create_subprocess_exec(
            _py_spy(),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(seconds),
            "--rate",
            str(PROFILE_RATE),
            "--format",
            "raw",
            "--threads",
            "--idle",
            "--output",
            str(outputs[name]),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        for name, pid in targets.items()
    ]
    for recorder in recorders:
        _, stderr = await recorder.communicate()
        if recorder.returncode != 0:
            raise RuntimeError(f"py-spy failed: {stderr.decode(errors='replace')[-500:]}")
    return outputs


def profile_summary(env_server_profile: Path, benchmark_profile: Path, seconds: int, concurrency: int) -> str:
    server = thread_profiles(env_server_profile)
    loop = server["MainThread"]
    executors, n_executors = merged(server, "asyncio_")
    bench = thread_profiles(benchmark_profile)
    fake_model = bench.get("fake-inference")
    rows = [[label, f"{loop.matching(fragment):.1%}"] for label, fragment in COST_CENTRES]
    top = [[f"`{frame}`", f"{loop.share(n):.1%}"] for frame, n in loop.leaves.most_common(6)]
    return "\n".join(
        [
            f"Profile at concurrency {concurrency} (py-spy, {PROFILE_RATE} Hz wall-clock samples, "
            f"{seconds} s; raw stacks in "
            f"`{env_server_profile.name}`, `{benchmark_profile.name}`). Busy (running or waiting for a core, not for "
            f"work): the env server's event loop {loop.share(loop.busy):.0%} of the time, its {n_executors} executor "
            f"threads (verifiers tokenizes prompts there) {executors:.0%} summed; in the benchmark process the fake "
            f"model's thread {fake_model.share(fake_model.busy) if fake_model else 0:.0%}, the client "
            f"{bench['MainThread'].share(bench['MainThread'].busy):.0%}.",
            "",
            markdown_table(["env-server event loop: where its time goes (inclusive)", "% of wall time"], rows),
            "",
            markdown_table(["env-server event loop: innermost frames", "% of wall time"], top),
        ]
    )
