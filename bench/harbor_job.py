"""Harbor's own job runner (`harbor.job.Job`) in a worker process, for bench/overhead.py.

The worker stays up between runs (as the env server does on the other path), so both paths
are measured warm. It reads one JSON request per line on stdin and answers one JSON line per
request on its original stdout; everything else it prints (Harbor's progress bar, logs) goes
to stderr. It imports Harbor only, not verifiers, so it starts in a few seconds.

Request: {"tasks", "jobs_dir", "sandbox_dir", "api_base", "agent", "agent_kwargs", "concurrency",
"repeats", "job_name"}. `agent` is "terminus-2" (Harbor's stock Terminus-2 on LiteLLM) or
"harbor-env" (`harbor_env.agent:InterceptedTerminus2`, the class harbor-env runs, given model
credentials as a rollout gives them, so that it talks through its own `InterceptionLLM`).
Answer: {"seconds", "episodes", "failures": [why, ...]} (the Job's wall time, Job.create included).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from harbor_env.testing.defaults import apply_environment_defaults  # noqa: E402

apply_environment_defaults()  # before Harbor loads; no telemetry (Job would post a job-finished event)

from harbor.job import Job  # noqa: E402
from harbor.models.job.config import DatasetConfig, JobConfig  # noqa: E402
from harbor.models.trial.config import AgentConfig, EnvironmentConfig  # noqa: E402

from harbor_env.agent import ModelCredentials, model_credentials  # noqa: E402

LOCAL_SANDBOX = "harbor_env.sandbox:LocalSandbox"
AGENTS = {"terminus-2": {"name": "terminus-2"}, "harbor-env": {"import_path": "harbor_env.agent:InterceptedTerminus2"}}


def job_config(request: dict[str, Any]) -> JobConfig:
    """Every task of `tasks`, `repeats` times, Harbor's Terminus-2 on the fake model, local sandbox."""
    return JobConfig(
        job_name=request["job_name"],
        jobs_dir=Path(request["jobs_dir"]),
        n_attempts=request["repeats"],
        n_concurrent_trials=request["concurrency"],
        quiet=True,
        datasets=[DatasetConfig(path=Path(request["tasks"]))],
        agents=[
            AgentConfig(
                **AGENTS[request["agent"]],
                model_name="openai/test-model",
                kwargs={"api_base": request["api_base"], **request["agent_kwargs"]},
            )
        ],
        environment=EnvironmentConfig(import_path=LOCAL_SANDBOX, kwargs={"sandbox_dir": request["sandbox_dir"]}),
    )


def failure(result: Any) -> str | None:
    """Why a trial does not count as solved, or None when it scored reward 1.0."""
    if result.exception_info is not None:
        return f"{result.trial_name}: {result.exception_info.exception_type}"
    rewards = result.verifier_result.rewards if result.verifier_result is not None else None
    if not rewards or rewards.get("reward") != 1.0:
        return f"{result.trial_name}: rewards {rewards}"
    return None


async def run_job(request: dict[str, Any]) -> dict[str, Any]:
    credentials = ModelCredentials(base_url=request["api_base"], api_key=os.environ["OPENAI_API_KEY"])
    with model_credentials(credentials) if request["agent"] == "harbor-env" else contextlib.nullcontext():
        started = time.perf_counter()
        job = await Job.create(job_config(request))
        result = await job.run()
        seconds = time.perf_counter() - started
    shutil.rmtree(job.job_dir, ignore_errors=True)  # trial folders: logs, trajectories
    failures = [why for why in map(failure, result.trial_results) if why is not None]
    return {"seconds": seconds, "episodes": len(result.trial_results), "failures": failures}


async def serve() -> None:
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # Harbor's console output must not mix in
    for line in sys.stdin:
        answers.write(json.dumps(await run_job(json.loads(line))) + "\n")
        answers.flush()


if __name__ == "__main__":
    asyncio.run(serve())
