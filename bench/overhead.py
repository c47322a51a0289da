"""Overhead of harbor-env against Harbor's own job runner, on the same work.

Same sample tasks (datasets/harbor_tasks), same agent (Terminus-2), same sandbox (the local
bubblewrap sandbox), same zero-latency scripted model (`SolveEachTask` on the fake inference
server, in this process), at several concurrencies:

  (a) harbor-env: HarborEnvironment in verifiers' env server (its own process), driven by an
      `EnvClient` with the train client (prime-rl's path: interception, token ids, logprobs);
  (b) Harbor: `harbor.job.Job` with Harbor's own Terminus-2 on the fake model's OpenAI API, in
      a worker process (bench/harbor_job.py).

In both, the runner lives in another process than the model, and both are warmed up before
they are timed. Runs alternate a, b, b, a, ... so that drift in the machine's load hits both.

Usage: uv run --group bench python bench/overhead.py [--quick] [--out bench/results]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from harbor_env.testing.defaults import apply_environment_defaults

apply_environment_defaults()  # before verifiers and Harbor load

import common  # noqa: E402
from common import TERMINUS_OPTIONS, markdown_table  # noqa: E402

from harbor_env.testing.configs import env_config, task_rows  # noqa: E402
from harbor_env.testing.env_server import env_server  # noqa: E402
from harbor_env.testing.episodes import Batch, run_batch, solving_model, train_client  # noqa: E402
from harbor_env.testing.processes import children_cpu_seconds, cpu_seconds, leak_notes  # noqa: E402
from harbor_env.testing.tasks import SAMPLE_TASKS  # noqa: E402

HARBOR_JOB_WORKER = Path(__file__).with_name("harbor_job.py")
CONCURRENCIES = (1, 8, 32)
# Repeats of the 7 sample tasks per run, chosen so that a run takes about 20 s or more.
REPEATS = {1: 3, 8: 8, 32: 16}
QUICK_REPEATS = {1: 1, 8: 2, 32: 5}
TARGET_RATIO = 0.95
HEADER = [
    "concurrency",
    "episodes per path",
    "harbor-env eps/min",
    "Harbor Job eps/min",
    "ratio a/b",
    "CPU s/episode a",
    "CPU s/episode b",
    "model calls/episode a",
    "model calls/episode b",
]


class HarborJobWorker:
    """bench/harbor_job.py in a subprocess: runs one Harbor Job per request."""

    def __init__(self, process: asyncio.subprocess.Process, work: Path, api_base: str):
        self.process = process
        self.work = work
        self.api_base = api_base
        self.runs = 0

    async def run(self, concurrency: int, repeats: int) -> Batch:
        self.runs += 1
        request = {
            "tasks": str(SAMPLE_TASKS),
            "jobs_dir": str(self.work / "jobs"),
            "sandbox_dir": str(self.work / "sandboxes"),
            "api_base": self.api_base,
            "agent_kwargs": TERMINUS_OPTIONS,
            "concurrency": concurrency,
            "repeats": repeats,
            "job_name": f"run-{self.runs}",
        }
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        await self.process.stdin.drain()
        line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the Harbor job worker died; see {self.work / 'worker.log'}")
        answer = json.loads(line)
        return Batch(answer["seconds"], answer["episodes"], answer["failures"])


@contextlib.asynccontextmanager
async def harbor_job_worker(work: Path, api_base: str) -> AsyncIterator[HarborJobWorker]:
    """The worker, with a key that is not real in its environment only (Harbor's LiteLLM wants one)."""
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "worker.log", "wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HARBOR_JOB_WORKER),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env={**os.environ, "OPENAI_API_KEY": "not-a-real-key"},
        )
    try:
        yield HarborJobWorker(process, work, api_base)
    finally:
        if process.returncode is None:
            assert process.stdin is not None
            process.stdin.close()  # the worker exits at the end of its input
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


def model_calls(model: Any) -> int:
    """Calls the fake model has answered: token-API calls (path a) and chat calls (path b)."""
    return len(model.records) + len(model.chat_requests)


def runner_cpu_seconds(pid: int) -> float:
    return cpu_seconds(pid) + children_cpu_seconds(pid)


def failures_note(name: str, batches: list[Batch]) -> str | None:
    failures = [why for batch in batches for why in batch.failures]
    if not failures:
        return None
    return f"{name}: {len(failures)} failed episodes (e.g. {failures[0]}); its figure is not meaningful."


async def measure(quick: bool) -> tuple[list[list[Any]], list[str]]:
    """Table rows (one per concurrency) and notes (failures, leaks)."""
    repeats = QUICK_REPEATS if quick else REPEATS
    rounds = 1 if quick else 4  # ABBA: four runs a side even out drift in the machine's load
    rows: list[list[Any]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="harbor-env-overhead-") as tmp:
        work = Path(tmp)
        config = env_config(work / "env")
        tasks = list(task_rows(config).values())
        with solving_model(work) as (model, tokenizer):
            client_config = train_client(model, tokenizer)
            async with env_server(config) as server, harbor_job_worker(work / "harbor", model.base_url) as worker:
                paths = {
                    "a": lambda c, k: run_batch(server.client, client_config, tasks * k, c),
                    "b": lambda c, k: worker.run(c, k),
                }
                runners = {"a": server.pid, "b": worker.process.pid}
                # Warm up both (imports, first sandbox, connection pools), untimed.
                await asyncio.gather(paths["a"](len(tasks), 1), paths["b"](len(tasks), 1))
                for concurrency in CONCURRENCIES:
                    batches: dict[str, list[Batch]] = {"a": [], "b": []}
                    cpu = {"a": 0.0, "b": 0.0}  # the runner's process and its sandboxes
                    calls = {"a": 0, "b": 0}  # the policy waits while a script runs: more on a slow machine
                    for round_ in range(rounds):
                        for path in ("a", "b") if round_ % 2 == 0 else ("b", "a"):
                            before, calls_before = runner_cpu_seconds(runners[path]), model_calls(model)
                            batches[path].append(await paths[path](concurrency, repeats[concurrency]))
                            cpu[path] += runner_cpu_seconds(runners[path]) - before
                            calls[path] += model_calls(model) - calls_before
                    rate = {
                        p: sum(b.episodes for b in bs) / sum(b.seconds for b in bs) * 60 for p, bs in batches.items()
                    }
                    episodes = {p: sum(b.episodes for b in bs) for p, bs in batches.items()}
                    rows.append(
                        [
                            concurrency,
                            episodes["a"],
                            f"{rate['a']:.1f}",
                            f"{rate['b']:.1f}",
                            f"{rate['a'] / rate['b']:.2f}",
                            f"{cpu['a'] / episodes['a']:.2f}",
                            f"{cpu['b'] / episodes['b']:.2f}",
                            f"{calls['a'] / episodes['a']:.1f}",
                            f"{calls['b'] / episodes['b']:.1f}",
                        ]
                    )
                    for name, path in (("harbor-env", "a"), ("Harbor Job", "b")):
                        note = failures_note(f"{name} at concurrency {concurrency}", batches[path])
                        if note:
                            notes.append(note)
        await asyncio.sleep(1.0)
        for sandboxes in (work / "env" / "sandboxes", work / "harbor" / "sandboxes"):
            notes += leak_notes(sandboxes)
    return rows, notes


async def section(out_dir: pathlib.Path, quick: bool = False) -> str:
    rows, notes = await measure(quick)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "overhead.json").write_text(json.dumps({"header": HEADER, "rows": rows, "notes": notes}, indent=1))
    ratios = [float(row[4]) for row in rows]
    verdict = (
        f"harbor-env keeps at least {min(ratios):.2f}× Harbor's own throughput at every concurrency"
        if min(ratios) >= TARGET_RATIO
        else f"harbor-env falls below the {TARGET_RATIO} target (lowest ratio {min(ratios):.2f})"
    )
    busiest = rows[-1]
    verdict += (
        f". CPU per episode (the runner's process and the sandboxes it reaped) at concurrency {busiest[0]}: "
        f"{busiest[5]} s for harbor-env against {busiest[6]} s for Harbor's Job; once the cores are saturated, "
        "throughput follows CPU per episode. The policy waits (one more model call) while a solution script "
        "is still running, so a busier machine makes longer episodes on either path"
    )
    text = [
        "### Overhead against Harbor's own job runner",
        "",
        f"`uv run --group bench python bench/overhead.py{' --quick' if quick else ''}`: "
        "the 7 sample tasks, Terminus-2, "
        "the local sandbox and a zero-latency scripted model (in the benchmark process), through (a) harbor-env in "
        "verifiers' env server (prime-rl's path) and (b) Harbor's `Job` (its own Terminus-2 on the model's OpenAI "
        "API), each in its own process, runs interleaved.",
        "",
        markdown_table(HEADER, rows),
        "",
        f"{verdict}. Every episode was checked for reward 1.0 on both paths."
        + ("" if notes else " None failed; no sandbox process or folder was left behind."),
    ]
    text += [f"- {note}" for note in notes]
    return "\n".join(text) + "\n"


def main() -> None:
    common.run_section_alone(__doc__, "a few episodes per run, one round", section)


if __name__ == "__main__":
    main()
