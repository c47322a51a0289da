"""A Harbor `Trial` of one task in the local sandbox, and its reward."""

from __future__ import annotations

from pathlib import Path

from harbor.models.trial.config import AgentConfig, EnvironmentConfig, TaskConfig, TrialConfig
from harbor.models.trial.result import TrialResult
from harbor.trial.trial import Trial


async def run_trial(task: Path, work: Path, agent: str, **sandbox_kwargs) -> TrialResult:
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


def reward_of(result: TrialResult) -> float:
    assert result.exception_info is None, result.exception_info
    assert result.verifier_result is not None
    return result.verifier_result.rewards["reward"]
