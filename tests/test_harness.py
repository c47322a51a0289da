"""The harness's Trial configs and the rules that turn a Trial's result into a reward or an error."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
from harbor.models.trial.result import ExceptionInfo, TrialResult
from harbor.models.verifier.result import VerifierResult
from pydantic import ValidationError

from harbor_env.harness import HarborTrialHarness, HarborTrialHarnessConfig
from harbor_env.outcome import interpret
from harbor_env.taskset import HarborTaskset, HarborTasksetConfig
from harbor_env.testing.tasks import SAMPLE_TASKS
from harbor_env.testing.trials import run_trial

try:  # Harbor 0.25+
    from harbor.models.trial import error_policy
except ImportError:
    error_policy = None


def harness(**config) -> HarborTrialHarness:
    return HarborTrialHarness(HarborTrialHarnessConfig(id="harbor-env", **config))


@pytest.fixture(scope="module")
def task_data():
    (task,) = HarborTaskset(
        HarborTasksetConfig(id="harbor-env", path=str(SAMPLE_TASKS), include=["git-history"])
    ).load()
    return task.data


def test_trial_config_for_terminus_and_the_local_sandbox(task_data) -> None:
    config = harness(
        environment={"type": "local", "kwargs": {"keep": True}}, agent={"max_turns": 7, "parser": "xml"}
    ).trial_config(task_data, "my-model")
    assert config.task.path == Path(task_data.task_dir)
    assert config.environment.import_path == "harbor_env.sandbox:LocalSandbox"
    assert config.environment.kwargs == {"keep": True}
    assert config.agent.import_path == "harbor_env.agent:InterceptedTerminus2"
    assert config.agent.model_name == "openai/my-model"
    assert config.agent.kwargs["max_turns"] == 7 and config.agent.kwargs["parser_name"] == "xml"
    assert config.agent.kwargs["enable_summarize"] is False and config.agent.kwargs["record_terminal_session"] is False
    assert config.trials_dir.is_absolute()


def test_trial_config_for_harbor_types_and_other_agents(task_data) -> None:
    config = harness(environment={"type": "modal"}, agent={"name": "oracle"}).trial_config(task_data, "m")
    assert config.environment.type.value == "modal" and config.environment.import_path is None
    assert config.agent.name == "oracle" and config.agent.import_path is None
    custom = harness(agent={"import_path": "my_pkg.agents:Mine"}).trial_config(task_data, "m")
    assert custom.agent.import_path == "my_pkg.agents:Mine" and custom.agent.name is None


def test_timeouts_authored_scaled_ignored(task_data) -> None:
    assert harness().trial_config(task_data, "m").timeout_multiplier == 1.0
    scaled = harness(timeouts="scaled", timeout_multiplier=2.5).trial_config(task_data, "m")
    assert scaled.timeout_multiplier == 2.5 and scaled.agent.override_timeout_sec is None
    # A multiplier would do nothing unless timeouts = "scaled": refused rather than ignored.
    with pytest.raises(ValidationError, match='`timeout_multiplier` is used only with timeouts = "scaled"'):
        harness(timeout_multiplier=2.5)
    ignored = harness(timeouts="ignored").trial_config(task_data, "m")
    assert ignored.agent.override_timeout_sec >= 7 * 24 * 3600


def test_bad_harness_options_name_what_is_allowed() -> None:
    with pytest.raises(ValidationError, match=r"unknown environment type 'dokcer'; allowed: .*docker.*local"):
        harness(environment={"type": "dokcer"})
    with pytest.raises(ValidationError, match=r"unknown agent 'terminus-3'; allowed: .*terminus-2"):
        harness(agent={"name": "terminus-3"})
    with pytest.raises(ValidationError, match="max_turns"):
        harness(agent={"max_turns": 0})
    with pytest.raises(ValidationError, match="timeout_multiplier"):
        harness(timeout_multiplier=-1)
    with pytest.raises(ValidationError, match="max_turn"):
        harness(agent={"max_turn": 3})  # a key that does not exist


@pytest.fixture(scope="module")
def real_result(tmp_path_factory: pytest.TempPathFactory) -> TrialResult:
    """A real oracle trial's result, to vary its verifier output."""
    work = tmp_path_factory.mktemp("outcome")
    return asyncio.run(run_trial(SAMPLE_TASKS / "csv-to-json", work, "oracle"))


def with_rewards(result: TrialResult, rewards: dict | None) -> TrialResult:
    return result.model_copy(update={"verifier_result": None if rewards is None else VerifierResult(rewards=rewards)})


def test_reward_json_rules(real_result: TrialResult) -> None:
    scored = interpret(real_result)
    assert scored.error is None and scored.reward == 1.0
    assert scored.metrics["checks_passed"] == 8 and scored.metrics["checks_total"] == 8  # reward.json's other keys
    assert scored.metrics["harbor_verifier_sec"] > 0 and scored.metrics["harbor_agent_timeout"] == 0
    assert interpret(with_rewards(real_result, {"score": 0.25})).reward == 0.25  # one value, any name
    several = interpret(with_rewards(real_result, {"a": 1, "b": 0}))
    assert several.reward is None and "no `reward` key" in several.error
    assert interpret(with_rewards(real_result, {"reward": math.nan})).error is not None
    assert interpret(with_rewards(real_result, None)).error.endswith("the verifier produced no result")


# Harbor 0.25's error policy against this project's, per exception type, as the comparison in
# docs/environment.md states them: (scored here, Harbor's `reward_valid`).
POLICY_COMPARISON = {
    "AgentTimeoutError": (True, True),
    "NonZeroAgentExitCodeError": (True, False),
    "ContextLengthExceededError": (False, True),
    "ApiInternalServerError": (False, False),
    "InferenceError": (False, False),
    "AgentAuthenticationError": (False, False),
    "SandboxBuildFailedError": (False, False),
    "EnvironmentStartTimeoutError": (False, False),
    "RuntimeError": (False, False),
    "RewardFileNotFoundError": (False, False),
    "VerifierTimeoutError": (False, False),
}


@pytest.mark.parametrize("exception_type", sorted(POLICY_COMPARISON))
def test_which_exceptions_keep_the_reward(exception_type: str, real_result: TrialResult) -> None:
    """The agent's own outcomes are scored on the state it left; everything else is errored even
    when the verifier ran. Where Harbor has its own table (0.25+), it says what docs/environment.md says."""
    scored_here, harbor_reward_valid = POLICY_COMPARISON[exception_type]
    failed = real_result.model_copy(
        update={
            "exception_info": ExceptionInfo(
                exception_type=exception_type,
                exception_message="probe",
                exception_traceback="",
                occurred_at=datetime.now(UTC),
            )
        }
    )
    outcome = interpret(failed)
    assert (outcome.error is None) is scored_here, outcome.error
    assert outcome.info["harbor_exception_type"] == exception_type
    if error_policy is not None:
        assert error_policy.policy_for(exception_type).reward_valid is harbor_reward_valid


def test_a_forfeit_is_scored_only_when_the_guard_called_it(real_result: TrialResult) -> None:
    """The verifier guard's forfeit (its time ran out on an environment that still answers) is
    scored the least the task's range allows; the exception type alone is not enough."""
    forfeited = real_result.model_copy(
        update={
            "verifier_result": None,
            "exception_info": ExceptionInfo(
                exception_type="VerifierForfeit",
                exception_message="the tests ran past the verifier's 8 s",
                exception_traceback="",
                occurred_at=datetime.now(UTC),
            ),
        }
    )
    scored = interpret(forfeited, (-1.0, 1.0), forfeit="the tests ran past the verifier's 8 s")
    assert scored.error is None and scored.reward == -1.0
    assert scored.metrics["harbor_verifier_forfeit"] == 1.0
    assert scored.info["harbor_verifier_forfeit"] == "the tests ran past the verifier's 8 s"
    assert interpret(forfeited, forfeit=None).error is not None
    assert interpret(real_result, forfeit=None).metrics["harbor_verifier_forfeit"] == 0.0


def test_rewards_must_lie_in_the_tasks_declared_range(real_result: TrialResult) -> None:
    assert interpret(with_rewards(real_result, {"reward": 5}), (0.0, 10.0)).reward == 5.0
    outside = interpret(with_rewards(real_result, {"reward": 5}))
    assert outside.reward is None and "reward 5.0 is outside the task's range [0, 1]" in outside.error


async def test_heap_trimming_is_throttled() -> None:
    from harbor_env.memory import HeapTrimmer

    every_time, rarely = HeapTrimmer(interval_sec=0.0), HeapTrimmer(interval_sec=3600.0)
    for _ in range(3):
        await every_time.maybe_trim()
        await rarely.maybe_trim()
    assert (every_time.trims, rarely.trims) == (3, 1)


async def test_each_rollouts_agent_has_its_own_model_client(tmp_path: Path) -> None:
    """Inside a rollout Terminus-2's model is an InterceptionLLM on that rollout's endpoint and key
    (never shown), bounded by model_timeout_sec; outside one it is Harbor's LiteLLM."""
    from harbor.llms.lite_llm import LiteLLM

    from harbor_env.agent import InterceptedTerminus2, ModelCredentials, model_credentials
    from harbor_env.interception_llm import InterceptionLLM

    def agent(name: str) -> InterceptedTerminus2:
        return InterceptedTerminus2(
            logs_dir=tmp_path / name,
            model_name="openai/test-model",
            model_timeout_sec=5.0,
            record_terminal_session=False,
        )

    models = []
    for n in range(2):
        with model_credentials(ModelCredentials(base_url=f"http://127.0.0.1:9/rollout-{n}/v1", api_key=f"key-{n}")):
            models.append(agent(str(n))._llm)
    assert all(isinstance(model, InterceptionLLM) for model in models)
    assert [model._url for model in models] == [f"http://127.0.0.1:9/rollout-{n}/v1/chat/completions" for n in range(2)]
    assert "key-0" not in repr(models[0]) and models[0]._headers["Authorization"] == "Bearer key-0"
    sessions = [model.session() for model in models]
    assert sessions[0] is not sessions[1] and sessions[0].timeout.total == 5.0
    for model in models:
        await model.aclose()
    assert all(session.closed for session in sessions)
    assert isinstance(agent("outside")._llm, LiteLLM)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("env", {"A": "b"}),
        ("forward_env", ["HOME"]),
        ("disabled_tools", ["bash"]),
        ("skills", ["/skills"]),
        ("tool_timeout", 5.0),
    ],
)
def test_options_that_would_be_ignored_are_refused(option: str, value: object) -> None:
    """verifiers' HarnessConfig options configure a program in verifiers' runtime, which a Trial never uses."""
    with pytest.raises(ValidationError, match=f"`{option}` has no effect in the harbor-env harness"):
        HarborTrialHarnessConfig(**{option: value})
    # The env-server wire sends every field with its default: that must still validate.
    HarborTrialHarnessConfig.model_validate(HarborTrialHarnessConfig().model_dump(mode="json"))


def test_timeout_multiplier_needs_scaled_timeouts() -> None:
    with pytest.raises(ValidationError, match='`timeout_multiplier` is used only with timeouts = "scaled"'):
        HarborTrialHarnessConfig(timeout_multiplier=2.0)
    assert HarborTrialHarnessConfig(timeout_multiplier=2.0, timeouts="scaled").timeout_multiplier == 2.0
