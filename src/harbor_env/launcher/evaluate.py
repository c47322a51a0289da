"""Eval-only runs: rollouts of HarborEnvironment against any OpenAI-compatible server, no training.

The episodes take the same path as in training (verifiers' interception, this package's
harness, real Harbor Trials); only the client differs (verifiers' EvalClient relays chat
requests to the server as they are). The trials are kept in Harbor's job layout, so
`harbor view <jobs dir>` browses them, and a results table is written next to them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import verifiers.v1 as vf
from harbor.models.job.config import JobConfig
from harbor.models.job.result import JobResult, JobStats
from harbor.models.trial.config import TaskConfig
from harbor.models.trial.result import TrialResult
from rich.progress import Progress

from harbor_env.environment import HarborEnvironmentConfig
from harbor_env.harness import HarborTrialHarness


@dataclass
class EpisodeRow:
    task: str
    reward: float | None
    turns: int | None
    environment_setup_sec: float | None
    agent_sec: float | None
    verifier_sec: float | None
    total_sec: float | None
    failure: str  # "" for a clean episode; "agent timeout", or the error of an errored one
    trial: str


def _row(task: str, trace: vf.Trace) -> EpisodeRow:
    metrics, info = trace.metrics or {}, trace.info or {}

    def metric(name: str) -> float | None:
        value = metrics.get(name)
        return None if value is None else round(float(value), 2)

    if not trace.ok:
        failure = trace.errors[-1].message if trace.errors else "errored"
    elif metrics.get("harbor_agent_timeout"):
        failure = "agent timeout"
    else:
        failure = ""
    turns = metrics.get("harbor_turns")
    return EpisodeRow(
        task=task,
        reward=trace.reward if trace.ok else None,
        turns=None if turns is None else int(turns),
        environment_setup_sec=metric("harbor_environment_setup_sec"),
        agent_sec=metric("harbor_agent_sec"),
        verifier_sec=metric("harbor_verifier_sec"),
        total_sec=metric("harbor_trial_sec"),
        failure=" ".join(failure.split())[:160],
        trial=str(info.get("harbor_trial_dir", "")),
    )


def results_table(rows: list[EpisodeRow]) -> str:
    """The rows as a markdown table, with the mean reward over scored episodes."""
    lines = [
        "| task | reward | turns | env setup s | agent s | verifier s | total s | failure |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    dash = lambda v: "–" if v is None else str(v)  # noqa: E731
    for r in rows:
        lines.append(
            f"| {r.task} | {dash(r.reward)} | {dash(r.turns)} | {dash(r.environment_setup_sec)} | "
            f"{dash(r.agent_sec)} | {dash(r.verifier_sec)} | {dash(r.total_sec)} | {r.failure} |"
        )
    scored = [r.reward for r in rows if r.reward is not None]
    mean = f"{sum(scored) / len(scored):.3f}" if scored else "–"
    lines.append(f"\n{len(rows)} episodes, {len(scored)} scored, {len(rows) - len(scored)} errored; mean reward {mean}")
    return "\n".join(lines)


def _write_job(job_dir: Path, harness: HarborTrialHarness, tasks: list[vf.Task], model: str, started: datetime) -> None:
    """Harbor's job files (config.json, result.json) around the kept trial folders."""
    sample = harness.trial_config(tasks[0].data, model)
    job = JobConfig(
        job_name=job_dir.name,
        jobs_dir=job_dir.parent,
        agents=[sample.agent],
        environment=sample.environment,
        tasks=[TaskConfig(path=Path(t.data.task_dir)) for t in tasks],
    )
    (job_dir / "config.json").write_text(job.model_dump_json(indent=4))
    trial_results = [TrialResult.model_validate_json(p.read_text()) for p in sorted(job_dir.glob("*/result.json"))]
    result = JobResult(
        id=uuid.uuid4(),
        started_at=started,
        finished_at=datetime.now(UTC),
        n_total_trials=len(trial_results),
        stats=JobStats.from_trial_results(trial_results),
    )
    (job_dir / "result.json").write_text(result.model_dump_json(indent=4, exclude={"trial_results"}))


async def evaluate(
    config: HarborEnvironmentConfig,
    *,
    base_url: str,
    model: str,
    api_key_var: str,
    job_dir: Path,
    rollouts_per_task: int = 1,
    concurrency: int = 4,
    sampling: vf.SamplingConfig | None = None,
    show_progress: bool = True,
) -> list[EpisodeRow]:
    """Run every task of `config` `rollouts_per_task` times; write the job and the results table."""
    job_dir = job_dir.resolve()
    job_dir.mkdir(parents=True, exist_ok=True)
    harness_config = config.agent.harness
    harness_config.trials_dir = str(job_dir)
    harness_config.keep_trials = True  # Harbor's job layout: the trial folders are the results
    env = vf.load_environment(config)
    tasks = list(env.taskset)
    client = vf.EvalClientConfig(base_url=base_url, api_key_var=api_key_var)
    context = vf.ModelContext(model=model, client=client, sampling=sampling or vf.SamplingConfig())
    started = datetime.now(UTC)
    limit = asyncio.Semaphore(concurrency)
    rows: list[EpisodeRow] = []
    with Progress(disable=not show_progress, transient=True) as progress:
        bar = progress.add_task("episodes", total=len(tasks) * rollouts_per_task)

        async def one(task: vf.Task) -> None:
            async with limit:
                episode = await env.run_episode(task, context)
            rows.extend(_row(task.data.name, trace) for trace in episode.traces)
            progress.advance(bar)

        async with env.serving():
            await asyncio.gather(*(one(t) for t in tasks for _ in range(rollouts_per_task)))
    rows.sort(key=lambda r: (r.task, r.trial))
    table = results_table(rows)
    (job_dir / "results.md").write_text(table + "\n")
    (job_dir / "results.json").write_text(json.dumps([asdict(r) for r in rows], indent=2))
    _write_job(job_dir, HarborTrialHarness(harness_config), tasks, model, started)
    return rows
