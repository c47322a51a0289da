"""Overhead of harbor-env against Harbor's own job runner, on the same work.

Same sample tasks (datasets/harbor_tasks), same sandbox (the local bubblewrap sandbox), same
zero-latency scripted model (`SolveEachTask` on the fake inference server, in this process),
at concurrency 1, 8 and 32, through three paths, each in its own process:

  (a) harbor-env: HarborEnvironment in verifiers' env server, driven by an `EnvClient` with the
      train client (prime-rl's path: interception, token ids, logprobs);
  (b) Harbor's `Job` with Harbor's stock Terminus-2 on the fake model's OpenAI API
      (bench/harbor_job.py);
  (c) Harbor's `Job` with the Terminus-2 class harbor-env runs (`InterceptedTerminus2`, talking
      through its `InterceptionLLM`), in another worker of bench/harbor_job.py.

All three are warmed up before they are timed; each round runs one batch per path, in an order
that rotates from round to round, so that drift in the machine's load hits all of them. Only
episodes with reward 1.0 count towards throughput; any other is reported and fails the verdict.
Ratios a/b and a/c are medians over rounds, with their spread (min-max). The target: a/c >= 0.95
at concurrency 8 and 32. Then (a) and (c) run once more, untimed, sampled by py-spy: the CPU per
episode of each runner's process by owner (harbor_env, verifiers, Harbor, other) and of its
sandboxes, and (a) minus (c): what harbor-env's extra CPU is.

Usage: uv run --group bench python bench/overhead.py [--quick] [--out bench/results]
(--quick: a few episodes per path, one round, no 32; it gives no verdict.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harbor_env.testing.defaults import apply_environment_defaults

apply_environment_defaults()  # before verifiers and Harbor load

import common  # noqa: E402
from common import TERMINUS_OPTIONS, markdown_table  # noqa: E402
from cpu_owners import OWNERS, cpu_by_owner  # noqa: E402
from profiles import sampling  # noqa: E402

from harbor_env.testing.configs import env_config, task_rows  # noqa: E402
from harbor_env.testing.env_server import env_server  # noqa: E402
from harbor_env.testing.episodes import Batch, run_batch, solving_model, train_client  # noqa: E402
from harbor_env.testing.processes import cpu_seconds, leak_notes, runner_cpu  # noqa: E402
from harbor_env.testing.tasks import SAMPLE_TASKS  # noqa: E402

HARBOR_JOB_WORKER = Path(__file__).with_name("harbor_job.py")
CONCURRENCIES = (1, 8, 32)
QUICK_CONCURRENCIES = (1, 8)
# Repeats of the 7 sample tasks per batch, chosen so that a batch takes about 20 s or more.
REPEATS = {1: 3, 8: 8, 32: 16}
QUICK_REPEATS = {1: 1, 8: 1}
ROUNDS = 5
TARGET_RATIO = 0.95
TARGET_CONCURRENCIES = (8, 32)
PATHS = {
    "a": "harbor-env (env server)",
    "b": "Harbor Job, stock Terminus-2",
    "c": "Harbor Job, harbor-env's Terminus-2",
}
HEADER = [
    "concurrency",
    "episodes per path",
    "eps/min a",
    "eps/min b",
    "eps/min c",
    "a/b median (min-max)",
    "a/c median (min-max)",
    "CPU s/episode a",
    "CPU s/episode b",
    "CPU s/episode c",
    "model calls/episode a / b / c",
]


class HarborJobWorker:
    """bench/harbor_job.py in a subprocess: runs one Harbor Job per request."""

    def __init__(self, process: asyncio.subprocess.Process, work: Path, api_base: str, agent: str):
        self.process = process
        self.agent = agent
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
            "agent": self.agent,
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
async def harbor_job_worker(work: Path, api_base: str, agent: str) -> AsyncIterator[HarborJobWorker]:
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
        yield HarborJobWorker(process, work, api_base, agent)
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


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


@dataclass
class Measured:
    """One concurrency's batches per path, and what the runners used for them."""

    concurrency: int
    batches: dict[str, list[Batch]] = field(default_factory=lambda: {p: [] for p in PATHS})
    cpu: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PATHS, 0.0))
    calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PATHS, 0))
    env_server_cpu: float = 0.0  # the env server's process alone (a), without the sandboxes

    def episodes(self, path: str) -> int:
        return sum(b.episodes for b in self.batches[path])

    def ratios(self, of: str) -> list[float]:
        """a's solved-episode rate over `of`'s, round by round."""
        return [solved_rate(a) / solved_rate(o) for a, o in zip(self.batches["a"], self.batches[of], strict=True)]

    def failures(self) -> list[str]:
        return [f"{PATHS[p]}: {why}" for p, bs in self.batches.items() for b in bs for why in b.failures]

    def row(self) -> list[Any]:
        rate = {p: sum(solved_rate(b) for b in bs) / len(bs) for p, bs in self.batches.items()}
        per_episode = {p: self.cpu[p] / self.episodes(p) for p in PATHS}
        return [
            self.concurrency,
            self.episodes("a"),
            *(f"{rate[p]:.1f}" for p in PATHS),
            spread(self.ratios("b")),
            spread(self.ratios("c")),
            *(f"{per_episode[p]:.2f}" for p in PATHS),
            " / ".join(f"{self.calls[p] / self.episodes(p):.1f}" for p in PATHS),
        ]


def solved_rate(batch: Batch) -> float:
    """Episodes per minute that scored the expected reward (1.0)."""
    return (batch.episodes - len(batch.failures)) / batch.seconds * 60


async def measure(quick: bool, work: Path) -> list[Measured]:
    """Every path at every concurrency, round by round."""
    results: list[Measured] = []
    config = env_config(work / "env")
    tasks = list(task_rows(config).values())
    with solving_model(work) as (model, tokenizer):
        client_config = train_client(model, tokenizer)
        async with (
            env_server(config) as server,
            harbor_job_worker(work / "stock", model.base_url, "terminus-2") as stock,
            harbor_job_worker(work / "ours", model.base_url, "harbor-env") as ours,
        ):
            paths = {
                "a": lambda c, k: run_batch(server.client, client_config, tasks * k, c),
                "b": stock.run,
                "c": ours.run,
            }
            runners = {"a": server.pid, "b": stock.process.pid, "c": ours.process.pid}
            with contextlib.ExitStack() as meters:
                cpu = {path: meters.enter_context(runner_cpu(path, pid)) for path, pid in runners.items()}
                # Warm up every path (imports, first sandbox, connection pools), untimed.
                await asyncio.gather(*(run(len(tasks), 1) for run in paths.values()))
                await measure_rounds(quick, paths, cpu, server.pid, model, results)
    return results


async def measure_rounds(
    quick: bool,
    paths: dict[str, Any],
    cpu: dict[str, Any],
    server_pid: int,
    model: Any,
    results: list[Measured],
) -> None:
    repeats = QUICK_REPEATS if quick else REPEATS
    rounds = 1 if quick else ROUNDS
    for concurrency in QUICK_CONCURRENCIES if quick else CONCURRENCIES:
        measured = Measured(concurrency)
        for round_ in range(rounds):
            order = list(PATHS)[round_ % 3 :] + list(PATHS)[: round_ % 3]
            for path in order:
                before, calls_before = cpu[path](), model_calls(model)
                server_before = cpu_seconds(server_pid)
                measured.batches[path].append(await paths[path](concurrency, repeats[concurrency]))
                if path == "a":
                    measured.env_server_cpu += cpu_seconds(server_pid) - server_before
                measured.cpu[path] += cpu[path]() - before
                measured.calls[path] += model_calls(model) - calls_before
        results.append(measured)


async def split_by_owner(quick: bool, work: Path, out_dir: Path) -> dict[str, dict[str, float]]:
    """Paths (a) and (c) once more, one batch each, untimed: CPU seconds per episode of the
    runner's process by owner (py-spy samples of all its threads, weighted by the CPU it used over
    the batch) and of the sandboxes (everything below the runner)."""
    concurrency = 8 if quick else 32
    config = env_config(work / "env")
    tasks = list(task_rows(config).values())
    repeats = 1 if quick else 5
    split = {}
    with solving_model(work) as (model, tokenizer):
        client_config = train_client(model, tokenizer)
        async with env_server(config) as server, harbor_job_worker(work / "ours", model.base_url, "harbor-env") as ours:
            runs = {
                "a": (server.pid, lambda c, k: run_batch(server.client, client_config, tasks * k, c)),
                "c": (ours.process.pid, ours.run),
            }
            for path, (pid, run) in runs.items():
                with runner_cpu(f"split-{path}", pid) as everything:
                    await run(len(tasks), 1)  # warm-up, not sampled
                    process, tree = cpu_seconds(pid), everything()
                    async with sampling(pid, out_dir / f"overhead-samples-{path}.txt") as samples:
                        batch = await run(concurrency, repeats)
                        used, tree_used = cpu_seconds(pid) - process, everything() - tree
                split[path] = {owner: cpu / batch.episodes for owner, cpu in cpu_by_owner(samples, used).items()}
                split[path]["sandboxes"] = (tree_used - used) / batch.episodes
    return split


def verdicts(results: list[Measured]) -> list[dict[str, Any]]:
    """One per target concurrency: a/c's median against the target; failures fail it."""
    found = []
    for measured in results:
        if measured.concurrency not in TARGET_CONCURRENCIES:
            continue
        median = statistics.median(measured.ratios("c"))
        failures = measured.failures()
        met = median >= TARGET_RATIO and not failures
        why = f"a/c {spread(measured.ratios('c'))} against {TARGET_RATIO}"
        if failures:
            why += f"; {len(failures)} episodes failed (e.g. {failures[0]})"
        found.append({"target": f"a/c >= {TARGET_RATIO} at concurrency {measured.concurrency}", "met": met, "why": why})
    return found


def owner_table(split: dict[str, dict[str, float]]) -> tuple[list[str], list[list[str]]]:
    parts = [*OWNERS, "sandboxes"]
    rows = [[f"({path})", *(f"{split[path][part] * 1000:.0f}" for part in parts)] for path in split]
    extra = [split["a"][part] - split["c"][part] for part in parts]
    rows.append(["(a) - (c)", *(f"{ms * 1000:+.0f}" for ms in extra)])
    return ["path", *parts], rows


async def section(out_dir: pathlib.Path, quick: bool = False) -> str:
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="harbor-env-overhead-") as tmp:
        work = Path(tmp)
        results = await measure(quick, work / "timed")
        owners = await split_by_owner(quick, work / "profiled", out_dir)
        await asyncio.sleep(1.0)
        notes = [f"{measured.concurrency}: {why}" for measured in results for why in measured.failures()]
        for root in (work / "timed", work / "profiled"):
            for sandboxes in sorted(root.glob("*/sandboxes")):
                notes += leak_notes(sandboxes)
    rows = [measured.row() for measured in results]
    found = [] if quick else verdicts(results)
    busiest = results[-1]
    figures = {
        "cpu_per_episode": {p: busiest.cpu[p] / busiest.episodes(p) for p in PATHS},
        "cpu_concurrency": busiest.concurrency,
        "env_server_cpu_per_episode": busiest.env_server_cpu / busiest.episodes("a"),
        "cpu_per_episode_by_owner": owners,
    }
    (out_dir / "overhead.json").write_text(
        json.dumps({"header": HEADER, "rows": rows, "notes": notes, "verdicts": found, "figures": figures}, indent=1)
    )
    extra = busiest.cpu["a"] / busiest.episodes("a") - busiest.cpu["c"] / busiest.episodes("c")
    text = [
        "### Overhead against Harbor's own job runner",
        "",
        f"`uv run --group bench python bench/overhead.py{' --quick' if quick else ''}`: the 7 sample tasks, the "
        "local sandbox and a zero-latency scripted model (in the benchmark process), through (a) harbor-env in "
        "verifiers' env server (prime-rl's path), (b) Harbor's `Job` with its stock Terminus-2 and (c) Harbor's "
        "`Job` with harbor-env's Terminus-2 (`InterceptedTerminus2`), each in its own process, rounds interleaved. "
        "Throughput counts episodes with reward 1.0 only; ratios are medians over rounds (min-max). CPU is the "
        "runner's process and everything it started (a cpuacct cgroup per runner: processes killed with their "
        "sandbox count too).",
        "",
        markdown_table(HEADER, rows),
        "",
        f"harbor-env's extra CPU per episode against (c) at concurrency {busiest.concurrency}: {extra:+.2f} s; "
        f"the env server's process alone: {figures['env_server_cpu_per_episode']:.3f} s per episode.",
        "",
        f"Where (a)'s extra CPU goes: (a) and (c) once more, one batch each at concurrency {8 if quick else 32}, "
        "the runner's process sampled by py-spy (all threads; a sample belongs to the innermost harbor_env, "
        "verifiers or Harbor frame on its stack, else to other: the event loop, idle pools), weighted by the CPU "
        "it used; sandboxes: every process below the runner. Milliseconds per episode:",
        "",
        markdown_table(*owner_table(owners)),
        "",
    ]
    if quick:
        text.append("`--quick` gives no verdict: one round of small batches, no concurrency 32.")
    else:
        text += [f"- {'met' if v['met'] else 'NOT MET'}: {v['target']} ({v['why']})" for v in found]
    text += [f"- {note}" for note in notes] or ["", "Every episode scored 1.0; nothing was left behind."]
    return "\n".join(text) + "\n"


def main() -> None:
    common.run_section_alone(__doc__, "a few episodes per path, one round; no verdict", section)


if __name__ == "__main__":
    main()
