"""What the benchmarks share: an env server in its own process (prime-rl's path), the fake model,
the scripted policies and /proc readings. Import this module before verifiers or Harbor."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-list download at import
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_TASKS = ROOT / "datasets" / "harbor_tasks"

import verifiers.v1 as vf  # noqa: E402
from verifiers.v1.serve import EnvClient, env_config_data, serve_env  # noqa: E402
from verifiers.v1.utils.loaders import load_taskset, resolve_env_config  # noqa: E402

from harbor_env.testing.policies import SolveEachTaskWhenDone  # noqa: E402
from harbor_env.testing.tokenizer import train_client_config  # noqa: E402

SAMPLING = vf.SamplingConfig(temperature=1.0, max_tokens=4096)


def env_config(tasks: Path, work: Path, *, harness: dict[str, Any] | None = None) -> Any:
    """A HarborEnvironment config on `tasks`, running Terminus-2 in the local sandbox under `work`."""
    return resolve_env_config(
        {
            "taskset": {"id": "harbor-env", "path": str(tasks)},
            "agent": {
                "harness": {
                    "id": "harbor-env",
                    "trials_dir": str(work / "trials"),
                    "environment": {"type": "local", "kwargs": {"sandbox_dir": str(work / "sandboxes")}},
                    **(harness or {}),
                }
            },
        }
    )


def task_rows(config: Any) -> dict[str, dict[str, Any]]:
    """The taskset's rows by task name, as the client sends them to the env server."""
    return {t.data.name: t.data.model_dump(mode="json") for t in load_taskset(config.taskset)}


train_client = train_client_config  # the trainer's client, with the renderer the configs train with


@dataclass
class EnvServer:
    """A verifiers env server in a spawned process, and a client connected to it."""

    process: multiprocessing.process.BaseProcess
    client: EnvClient

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid


@contextlib.asynccontextmanager
async def env_server(config: Any) -> AsyncIterator[EnvServer]:
    context = multiprocessing.get_context("spawn")
    addresses = context.Queue()
    process = context.Process(
        target=serve_env,
        kwargs={
            "max_workers": 1,
            "address": "tcp://127.0.0.1:0",
            "address_queue": addresses,
            "config_data": env_config_data(config),
        },
        daemon=True,
    )
    process.start()
    client = EnvClient(await asyncio.to_thread(addresses.get, True, 300))
    try:
        await client.wait_for_server_startup(timeout=300)
        yield EnvServer(process, client)
    finally:
        await client.close()
        process.terminate()
        process.join(30)


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def processes_mentioning(text: str) -> set[int]:
    """PIDs whose command line contains `text` (e.g. a benchmark's sandbox folder)."""
    found = set()
    for pid in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            if pid.isdigit() and text in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                found.add(int(pid))
    return found


async def timed(run: Callable[[], Any]) -> float:
    """Seconds `await run()` takes."""
    started = time.perf_counter()
    await run()
    return time.perf_counter() - started


def section_arguments(doc: str, quick_help: str) -> argparse.ArgumentParser:
    """The command line every benchmark section shares: --quick and --out."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    return parser


def run_section_alone(doc: str, quick_help: str, section: Callable[[Path, bool], Any]) -> None:
    """A section's own command line: parse --quick/--out, run it, print its markdown."""
    args = section_arguments(doc, quick_help).parse_args()
    print(asyncio.run(section(args.out, args.quick)))


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


BENCH_TASK_TOML = 'version = "1.0"\n[verifier]\ntimeout_sec = 30.0\n[agent]\ntimeout_sec = {agent}\n'


def write_task(
    root: Path,
    name: str,
    instruction: str,
    *,
    agent_timeout: float = 600.0,
    test_sh: str = "#!/bin/bash\necho 1 > /logs/verifier/reward.txt\n",
) -> Path:
    """A minimal Harbor task under `root/name` (scores 1 by default), for benchmarks whose
    scripted policy picks its replies by a marker in `instruction`."""
    task = root / name
    for sub in ("environment", "tests", "solution"):
        (task / sub).mkdir(parents=True, exist_ok=True)
    (task / "task.toml").write_text(BENCH_TASK_TOML.format(agent=float(agent_timeout)))
    (task / "instruction.md").write_text(instruction.rstrip("\n") + "\n")
    (task / "environment" / "Dockerfile").write_text("FROM debian:bookworm-slim\nWORKDIR /app\n")
    (task / "tests" / "test.sh").write_text(test_sh)
    (task / "tests" / "test.sh").chmod(0o755)
    (task / "solution" / "solve.sh").write_text("#!/bin/bash\ntrue\n")
    return task


# Running batches of solved episodes (bench/overhead.py, bench/scaling.py).
from collections.abc import Iterator  # noqa: E402

from harbor_env.testing.inference import FakeInferenceServer  # noqa: E402
from harbor_env.testing.tokenizer import build_test_tokenizer  # noqa: E402


@dataclass
class Batch:
    """A batch of episodes: its wall time, and why any episode did not score reward 1.0."""

    seconds: float
    episodes: int
    failures: list[str]

    @property
    def per_minute(self) -> float:
        return self.episodes / self.seconds * 60


def episode_failure(episode: Any) -> str | None:
    """Why an episode from `EnvClient.run` does not count as solved, or None if it scored 1.0."""
    if not episode.traces:
        return "no trace"
    for trace in episode.traces:
        if not trace.ok:
            error = trace.last_error
            return f"errored: {error.type}: {error.message[:200]}" if error else f"stopped: {trace.stop_condition}"
        if trace.reward != 1.0:
            return f"reward {trace.reward}"
    return None


async def run_batch(
    client: EnvClient, model: vf.TrainClientConfig, rows: list[dict[str, Any]], concurrency: int
) -> Batch:
    """Run every row through the env server, at most `concurrency` episodes at a time."""
    limit = asyncio.Semaphore(concurrency)

    async def one(row: dict[str, Any]) -> str | None:
        async with limit:
            return episode_failure(await client.run(model, "test-model", SAMPLING, row))

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(one(row) for row in rows))
    seconds = time.perf_counter() - started
    return Batch(seconds, len(rows), [why for why in outcomes if why is not None])


@contextlib.contextmanager
def solving_model(work: Path) -> Iterator[tuple[FakeInferenceServer, Path]]:
    """The fake model (in a thread of this process) playing `SolveEachTask`, and its tokenizer."""
    tokenizer = build_test_tokenizer(work / "tokenizer")
    with FakeInferenceServer(tokenizer, SolveEachTaskWhenDone(SAMPLE_TASKS)) as server:
        yield server, tokenizer


# Terminus-2's options as harbor_env's harness sets them by default (TrialAgentConfig.to_harbor):
# for runs that configure Terminus-2 themselves (Harbor's Job, agent variants) to do the same work.
TERMINUS_OPTIONS = {
    "parser_name": "json",
    "enable_summarize": False,
    "record_terminal_session": False,
    "interleaved_thinking": False,
    "suppress_max_turns_warning": True,
}


# CPU accounting from /proc: what each part of a run costs, independent of how busy the machine is.
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(path: str) -> list[str]:
    return Path(path).read_text().rpartition(")")[2].split()  # fields from the 3rd (state) on


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """CPU time (user + system) of a process, all its threads, or of one of its threads."""
    fields = _stat_fields(f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat")
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children_cpu_seconds(pid: int) -> float:
    """CPU time of a process's children that it has reaped (e.g. the sandboxes' processes)."""
    fields = _stat_fields(f"/proc/{pid}/stat")
    return (int(fields[13]) + int(fields[14])) / CLOCK_TICKS


def children_of(pid: int) -> list[int]:
    """The PIDs whose parent is `pid`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int(_stat_fields(f"/proc/{entry}/stat")[1]) == pid:
                    found.append(int(entry))
    return found


def machine_busy_seconds() -> float:
    """CPU time all cores spent on anything but idle (this benchmark and whatever else runs)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / CLOCK_TICKS  # minus idle and iowait


def leak_notes(sandboxes: Path) -> list[str]:
    """What a run left behind under its sandbox folder: processes and folders (none is right)."""
    leaked = processes_mentioning(str(sandboxes))
    folders = list(sandboxes.iterdir()) if sandboxes.exists() else []
    return [f"leak: {len(leaked)} processes, {len(folders)} folders under {sandboxes}"] if leaked or folders else []
