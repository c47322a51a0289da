"""Run the gold patch (Harbor's oracle agent) on converted tasks in harbor-env's local sandbox:
a task whose own fix does not score 1 trains nothing but noise (a test that needs the network, a
flaky test, a runner the image lacks)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from harbor.models.trial.config import AgentConfig, EnvironmentConfig, TaskConfig, TrialConfig
from harbor.models.trial.result import TrialResult
from harbor.trial.trial import Trial

from harbor_env.datasets.cache import one_line, run_sync


async def run_local_trial(task: Path, work: Path, agent: str, **sandbox_kwargs) -> TrialResult:
    """One Harbor Trial of `task` with `agent` in the local sandbox."""
    config = TrialConfig(
        task=TaskConfig(path=task),
        trials_dir=work / "trials",
        agent=AgentConfig(name=agent),
        environment=EnvironmentConfig(
            import_path="harbor_env.sandbox:LocalSandbox",
            kwargs={"sandbox_dir": str(work / "sandboxes"), **sandbox_kwargs},
        ),
    )
    trial = await Trial.create(config)
    return await trial.run()


async def _verdict(task: Path, work: Path, slots: asyncio.Semaphore) -> str | None:
    async with slots:
        result = await run_local_trial(task, work, "oracle")
    if result.exception_info is not None:
        error = result.exception_info
        return f"the oracle could not run ({error.exception_type}: {one_line(error.exception_message, 200)})"
    rewards = result.verifier_result.rewards if result.verifier_result else {}
    if rewards.get("reward") != 1:
        shares = ", ".join(f"{k} {v}" for k, v in rewards.items() if k != "reward")
        return f"the oracle (gold patch) scored {rewards.get('reward')} ({shares}), not 1"
    return None


def oracle_verdicts(tasks: list[Path], work: Path, concurrency: int) -> list[str | None]:
    """For each task, None when its oracle scores 1, else why not (one line)."""
    slots = asyncio.Semaphore(concurrency)

    async def all_tasks() -> list[str | None]:
        return await asyncio.gather(*(_verdict(task, work, slots) for task in tasks))

    return run_sync(all_tasks())
