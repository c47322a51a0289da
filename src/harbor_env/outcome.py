"""What a finished Harbor Trial means for training: a scored episode or an errored one.

Infrastructure failures must never become a reward of 0 (that would teach the policy that
its actions caused them); prime-rl leaves errored traces out of the GRPO baseline instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from harbor.models.trial.paths import TrialPaths
from harbor.models.trial.result import TimingInfo, TrialResult

from harbor_env.errors import RewardRuleError, TrialError, VerifierForfeit
from harbor_env.rewards import DEFAULT_REWARD_RANGE, check_in_range, check_reward_json

# Exceptions Harbor records while still running the verifier: the agent's own outcomes.
AGENT_OUTCOMES = {"AgentTimeoutError", "NonZeroAgentExitCodeError"}
REWARD_KEY = "reward"
# Harbor's exception texts can quote what the tests wrote (a reward.json of 100 MB, say): what
# reaches the trace, the logs and prime-rl's records is capped.
MESSAGE_LIMIT = 2000


def clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """`text`, or its first `limit` characters and how many there were."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters in all)"


@dataclass
class Outcome:
    """A scored episode (`error` is None) or an errored one (`reward` is None)."""

    reward: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def _seconds(timing: TimingInfo | None) -> float | None:
    if timing is None or timing.started_at is None or timing.finished_at is None:
        return None
    return (timing.finished_at - timing.started_at).total_seconds()


def _phase_metrics(result: TrialResult) -> dict[str, float]:
    phases = {
        "harbor_environment_setup_sec": result.environment_setup,
        "harbor_agent_setup_sec": result.agent_setup,
        "harbor_agent_sec": result.agent_execution,
        "harbor_verifier_sec": result.verifier,
    }
    metrics = {name: s for name, timing in phases.items() if (s := _seconds(timing)) is not None}
    if result.started_at is not None and result.finished_at is not None:
        metrics["harbor_trial_sec"] = (result.finished_at - result.started_at).total_seconds()
    agent = result.agent_result
    if agent is not None:
        metadata = agent.metadata or {}
        if isinstance(metadata.get("n_episodes"), int):
            metrics["harbor_turns"] = float(metadata["n_episodes"])
        if agent.n_input_tokens is not None:
            metrics["harbor_input_tokens"] = float(agent.n_input_tokens)
        if agent.n_output_tokens is not None:
            metrics["harbor_output_tokens"] = float(agent.n_output_tokens)
    exception = result.exception_info
    metrics["harbor_agent_timeout"] = float(exception is not None and exception.exception_type == "AgentTimeoutError")
    return metrics


def _split_rewards(rewards: dict[str, Any], where: str) -> tuple[float, dict[str, float]]:
    """(reward, other verifier values): the `reward` key, or the only key there is."""
    numbers = {}
    for key, value in rewards.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                numbers[key] = float(value)
            except OverflowError:
                raise TrialError(f"{where}: the verifier's `{key}` is an integer too large for a float") from None
    if REWARD_KEY in numbers:
        reward = numbers.pop(REWARD_KEY)
    elif len(numbers) == 1:
        (reward,) = numbers.values()
        numbers = {}
    else:
        raise TrialError(
            f"{where}: the verifier wrote {sorted(rewards)} but no `{REWARD_KEY}` key; "
            f"reward.json needs a `{REWARD_KEY}` key when it holds several values"
        )
    if not math.isfinite(reward):
        raise TrialError(f"{where}: the verifier's reward is {reward}, not a finite number")
    return reward, {k: v for k, v in numbers.items() if math.isfinite(v)}


def _trial_paths(result: TrialResult) -> TrialPaths | None:
    if not result.trial_uri.startswith("file://"):
        return None
    return TrialPaths(Path(unquote(urlparse(result.trial_uri).path)))


def interpret(
    result: TrialResult, reward_range: tuple[float, float] = DEFAULT_REWARD_RANGE, forfeit: str | None = None
) -> Outcome:
    """Score a finished trial, or mark it errored when it says nothing about the agent or
    breaks the reward rule (`rewards.py`). `forfeit`: why the verifier guard gave up on the
    agent's account (its time ran out on an environment that still answers): scored the least
    the task's range allows (0 by default), as tests that fail."""
    info: dict[str, Any] = {"harbor_trial": result.trial_name, "harbor_task": result.task_name}
    metrics = _phase_metrics(result)
    exception = result.exception_info
    if exception is not None:
        info["harbor_exception_type"] = exception.exception_type
        info["harbor_exception_message"] = clip(exception.exception_message)
    where = f"trial {result.trial_name} ({result.task_name})"
    metrics["harbor_verifier_forfeit"] = 0.0
    if forfeit is not None and exception is not None and exception.exception_type == VerifierForfeit.__name__:
        # Only the guard sets `forfeit`; the exception type alone is not trusted.
        metrics["harbor_verifier_forfeit"] = 1.0
        info["harbor_verifier_forfeit"] = forfeit
        return Outcome(reward_range[0], metrics, info)
    if exception is not None and exception.exception_type not in AGENT_OUTCOMES:
        return Outcome(
            None, metrics, info, f"{where} failed: {exception.exception_type}: {clip(exception.exception_message)}"
        )
    if result.verifier_result is None:
        return Outcome(None, metrics, info, f"{where}: the verifier produced no result")
    paths = _trial_paths(result)
    try:
        if paths is not None and paths.reward_json_path.is_file():
            check_reward_json(paths.reward_json_path)
        reward, verifier_metrics = _split_rewards(result.verifier_result.rewards or {}, where)
        check_in_range(reward, reward_range, where)
    except (TrialError, RewardRuleError) as exc:
        return Outcome(None, metrics, info, clip(str(exc)))
    return Outcome(reward, {**verifier_metrics, **metrics}, info)
