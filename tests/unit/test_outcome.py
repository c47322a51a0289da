"""outcome.interpret on TrialResults built here: what a finished trial means for training."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import pytest
from harbor.models.agent.context import AgentContext
from harbor.models.task.id import LocalTaskId
from harbor.models.trial.config import TaskConfig, TrialConfig
from harbor.models.trial.result import AgentInfo, ExceptionInfo, TimingInfo, TrialResult
from harbor.models.verifier.result import VerifierResult

from harbor_env.outcome import interpret

T0 = dt.datetime(2026, 11, 26, 12, 0, 0)


def trial_result(
    trial_dir: Path,
    *,
    rewards: dict | None = None,
    exception: str | None = None,
    reward_json: object | None = None,
) -> TrialResult:
    """A finished trial of task `hello` whose folder is `trial_dir` (reward.json written when given)."""
    if reward_json is not None:
        verifier_dir = trial_dir / "verifier"
        verifier_dir.mkdir(parents=True, exist_ok=True)
        (verifier_dir / "reward.json").write_text(json.dumps(reward_json))
    return TrialResult(
        task_name="hello",
        trial_name="hello__abc",
        trial_uri=trial_dir.as_uri(),
        task_id=LocalTaskId(path=trial_dir / "task"),
        task_checksum="0",
        config=TrialConfig(task=TaskConfig(path=trial_dir / "task"), trial_name="hello__abc"),
        agent_info=AgentInfo(name="terminus-2", version="test"),
        agent_result=AgentContext(n_input_tokens=120, n_output_tokens=30, metadata={"n_episodes": 3}),
        verifier_result=None if rewards is None else VerifierResult(rewards=rewards),
        exception_info=None
        if exception is None
        else ExceptionInfo(exception_type=exception, exception_message="boom", exception_traceback="", occurred_at=T0),
        started_at=T0,
        finished_at=T0 + dt.timedelta(seconds=10),
        agent_execution=TimingInfo(started_at=T0 + dt.timedelta(seconds=1), finished_at=T0 + dt.timedelta(seconds=7)),
        verifier=TimingInfo(started_at=T0 + dt.timedelta(seconds=7), finished_at=T0 + dt.timedelta(seconds=9)),
    )


def test_a_verified_trial_is_scored_with_its_metrics(tmp_path: Path) -> None:
    outcome = interpret(trial_result(tmp_path, rewards={"reward": 0.5, "tests_passed": 3}))
    assert outcome.error is None and outcome.reward == 0.5
    assert outcome.metrics["tests_passed"] == 3.0
    assert outcome.metrics["harbor_trial_sec"] == 10.0
    assert outcome.metrics["harbor_agent_sec"] == 6.0 and outcome.metrics["harbor_verifier_sec"] == 2.0
    assert outcome.metrics["harbor_turns"] == 3.0 and outcome.metrics["harbor_input_tokens"] == 120.0
    assert outcome.metrics["harbor_agent_timeout"] == 0.0
    assert outcome.info == {"harbor_trial": "hello__abc", "harbor_task": "hello"}


def test_the_only_value_is_the_reward(tmp_path: Path) -> None:
    assert interpret(trial_result(tmp_path, rewards={"score": 1})).reward == 1.0


@pytest.mark.parametrize("exception", ["AgentTimeoutError", "NonZeroAgentExitCodeError"])
def test_the_agents_own_failures_are_still_scored(tmp_path: Path, exception: str) -> None:
    outcome = interpret(trial_result(tmp_path, rewards={"reward": 0.0}, exception=exception))
    assert outcome.error is None and outcome.reward == 0.0
    assert outcome.info["harbor_exception_type"] == exception
    assert outcome.metrics["harbor_agent_timeout"] == float(exception == "AgentTimeoutError")


@pytest.mark.parametrize("exception", ["InferenceError", "LocalSandboxError", "RuntimeError"])
def test_infrastructure_failures_error_the_episode_instead_of_scoring_zero(tmp_path: Path, exception: str) -> None:
    outcome = interpret(trial_result(tmp_path, rewards={"reward": 0.0}, exception=exception))
    assert outcome.reward is None
    assert outcome.error == f"trial hello__abc (hello) failed: {exception}: boom"


def test_no_verifier_result_errors_the_episode(tmp_path: Path) -> None:
    outcome = interpret(trial_result(tmp_path))
    assert outcome.reward is None and outcome.error == "trial hello__abc (hello): the verifier produced no result"


@pytest.mark.parametrize(
    ("rewards", "problem"),
    [
        ({"a": 1.0, "b": 0.0}, "no `reward` key"),
        ({"reward": math.inf}, "not a finite number"),
        ({"reward": 1.5}, "outside the task's range [0, 1]"),
        ({"reward": -0.1}, "outside the task's range [0, 1]"),
    ],
)
def test_rewards_that_break_the_rule_error_the_episode(tmp_path: Path, rewards: dict, problem: str) -> None:
    outcome = interpret(trial_result(tmp_path, rewards=rewards))
    assert outcome.reward is None and problem in (outcome.error or "")


def test_a_declared_range_admits_its_rewards(tmp_path: Path) -> None:
    assert interpret(trial_result(tmp_path, rewards={"reward": 7.0}), reward_range=(0.0, 10.0)).reward == 7.0


def test_a_boolean_in_reward_json_errors_the_episode_naming_the_file(tmp_path: Path) -> None:
    # Harbor reads `true` as 1; the rule refuses it, so a verifier that prints booleans is fixed, not trained on.
    outcome = interpret(trial_result(tmp_path, rewards={"reward": 1}, reward_json={"reward": True}))
    assert outcome.reward is None
    assert str(tmp_path / "verifier" / "reward.json") in (outcome.error or "") and "boolean" in (outcome.error or "")
