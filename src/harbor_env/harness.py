"""HarborTrialHarness: each rollout is one real Harbor Trial, run in-process.

The agent (Terminus-2 by default) sends every model call to the rollout's interception
endpoint, which records token ids and logprobs for training; Harbor's verifier scores the
episode; the trial's outcome becomes the trace's reward, metrics and info, or an error.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import Any, Literal

import verifiers.v1 as vf
from harbor.models.agent.name import AgentName
from harbor.models.environment_type import EnvironmentType
from harbor.models.trial.config import (
    AgentConfig,
    EnvironmentConfig,
    TaskConfig,
    TrialConfig,
)
from harbor.models.trial.result import TrialResult
from harbor.trial.hooks import TrialEvent
from harbor.trial.trial import Trial
from pydantic import Field, field_validator, model_validator
from pydantic_config import BaseConfig
from verifiers.v1.configs.client import resolve_api_key

from harbor_env.agent import ModelCredentials, model_credentials
from harbor_env.containers import before_trial, compose_overlays
from harbor_env.context_window import SummarizePlan, note_outcome, served_context_window, summarize_plan
from harbor_env.errors import TrialError
from harbor_env.memory import heap_trimmer
from harbor_env.outcome import Outcome, interpret
from harbor_env.rewards import declared_range
from harbor_env.taskset import HarborTaskData
from harbor_env.verifier_isolation import VerifierGuard, keeps_workdir_paths, unwritten_reward_file

logger = logging.getLogger(__name__)

LOCAL_SANDBOX = "harbor_env.sandbox:LocalSandbox"
TERMINUS_2 = "harbor_env.agent:InterceptedTerminus2"
# The local sandbox, by type name, next to Harbor's own environment types.
ENVIRONMENT_TYPES = sorted({"local", *(t.value for t in EnvironmentType)})
AGENT_NAMES = sorted(a.value for a in AgentName)
IGNORED_AGENT_TIMEOUT_SEC = 7 * 24 * 3600.0
# verifiers' HarnessConfig options (with their defaults) that nothing here reads.
INHERITED_WITHOUT_EFFECT: dict[str, Any] = {
    "env": {},
    "forward_env": [],
    "mcp_header_env": {},
    "disabled_tools": None,
    "skills": [],
    "tool_timeout": 600.0,
}


class TrialEnvironmentConfig(BaseConfig):
    """Where the trial runs: Harbor's environment (`TrialConfig.environment`)."""

    type: str = "docker"
    """A Harbor environment type (docker, modal, daytona, e2b, ...) or `local` (this
    project's bubblewrap sandbox, for hosts without Docker)."""
    import_path: str | None = None
    """`module:Class` of a custom Harbor environment; wins over `type`."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of the environment (e.g. `rootfs` for `local`)."""
    delete: bool = True
    """Delete the environment (container, sandbox) after the trial."""

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in ENVIRONMENT_TYPES:
            raise ValueError(
                f"unknown environment type {value!r}; allowed: {', '.join(ENVIRONMENT_TYPES)} (or set import_path)"
            )
        return value

    def to_harbor(self, task_dir: Path) -> EnvironmentConfig:
        if self.import_path is not None:
            return EnvironmentConfig(import_path=self.import_path, kwargs=self.kwargs, delete=self.delete)
        if self.type == "local":
            return EnvironmentConfig(import_path=LOCAL_SANDBOX, kwargs=self.kwargs, delete=self.delete)
        return EnvironmentConfig(
            type=EnvironmentType(self.type),
            kwargs=self.kwargs,
            delete=self.delete,
            extra_docker_compose=compose_overlays(self.type, task_dir),
        )


class TrialAgentConfig(BaseConfig):
    """The Harbor agent of each rollout (`TrialConfig.agent`)."""

    name: str = "terminus-2"
    """A Harbor agent name. `terminus-2` runs this project's Terminus-2, wired to the
    rollout's interception endpoint."""
    import_path: str | None = None
    """`module:Class` of a custom in-process agent; wins over `name`. It reaches the endpoint
    through `harbor_env.agent.current_model_credentials()` (or subclass InterceptedTerminus2)."""
    max_turns: int | None = Field(default=None, gt=0)
    """Most model calls per episode (Terminus-2); unlimited when unset."""
    parser: Literal["json", "xml"] = "json"
    """Terminus-2's reply format."""
    summarize: bool = False
    """Terminus-2's context summarization: before a turn, once fewer than
    `summarize_below_free_tokens` of the model's context are free, it hands the work over to a
    fresh chat (a summary, questions about it and their answers: three model calls). Every call
    trains with the episode's reward, as separate samples (each rewrite of the history starts
    one). Off: an episode that outgrows the context ends there and is scored."""
    context_tokens: int | None = Field(default=None, gt=0)
    """The model's context window in tokens, which summarization plans against. Unset: the
    inference server's `max_model_len` (`GET /v1/models`, as prime-rl's vLLM serves it)."""
    summarize_below_free_tokens: int | None = Field(default=None, gt=0)
    """Summarize before a turn once fewer tokens than this are free. Unset: room for the worst
    case of one more turn and the summarization's three calls, 4096 + 4 x the sampling's
    max_tokens (12,288 at 2,048)."""
    record_terminal: bool = False
    """Record the terminal with asciinema (Terminus-2)."""
    interleaved_thinking: bool = False
    """Send earlier turns' reasoning back to the model (Terminus-2)."""
    model_timeout_sec: float = Field(default=600.0, gt=0)
    """Longest one model call may take (Terminus-2). A call that takes longer means the
    inference server hung: the episode is errored, not scored. Keep it below the tasks' agent
    timeouts, or a hang runs into the agent timeout first (which is scored)."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """More keyword arguments for the agent. Never put keys here: Harbor writes them to disk."""

    @model_validator(mode="after")
    def _known_agent(self) -> TrialAgentConfig:
        if self.import_path is None and self.name not in AGENT_NAMES:
            raise ValueError(f"unknown agent {self.name!r}; allowed: {', '.join(AGENT_NAMES)} (or set import_path)")
        return self

    @property
    def is_terminus(self) -> bool:
        return self.import_path is None and self.name == AgentName.TERMINUS_2.value

    def to_harbor(self, model: str, summarizing: SummarizePlan | None = None) -> AgentConfig:
        """Harbor's agent config; `summarizing`: the window and threshold, with `summarize` on."""
        if not self.is_terminus:
            return AgentConfig(
                name=None if self.import_path else self.name,
                import_path=self.import_path,
                model_name=model,
                kwargs=self.kwargs,
            )
        kwargs = {
            "parser_name": self.parser,
            "enable_summarize": self.summarize,
            "record_terminal_session": self.record_terminal,
            "interleaved_thinking": self.interleaved_thinking,
            "suppress_max_turns_warning": True,
            "model_timeout_sec": self.model_timeout_sec,
            **({"max_turns": self.max_turns} if self.max_turns is not None else {}),
            **(
                {"context_window": summarizing.window, "proactive_summarization_threshold": summarizing.free_tokens}
                if summarizing is not None
                else {}
            ),
            **self.kwargs,
        }
        return AgentConfig(import_path=TERMINUS_2, model_name=model, kwargs=kwargs)


class HarborTrialHarnessConfig(vf.HarnessConfig):
    """How each rollout's Harbor Trial is built (`[...agent.harness]`, id `harbor-env`)."""

    environment: TrialEnvironmentConfig = TrialEnvironmentConfig()
    agent: TrialAgentConfig = TrialAgentConfig()
    timeouts: Literal["authored", "scaled", "ignored"] = "authored"
    """Harbor's timeouts: as the task authored them, scaled by `timeout_multiplier`, or
    ignored for the agent phase (environment build and verifier keep theirs)."""
    timeout_multiplier: float = Field(default=1.0, gt=0)
    trials_dir: str = "outputs/harbor_trials"
    """Where Harbor writes trial folders (logs, trajectories, rewards)."""
    keep_trials: bool = False
    """Keep each trial folder after the rollout (they hold full agent logs)."""
    retries: int = Field(default=0, ge=0)
    """Run the trial again when it fails before its agent starts (environment build or start,
    a flaky sandbox provider); later failures are not retried (the episode is errored)."""
    retry_backoff_sec: float = Field(default=5.0, ge=0)
    """Wait before retry n: retry_backoff_sec * 2**(n-1)."""

    @model_validator(mode="after")
    def _no_option_without_effect(self) -> HarborTrialHarnessConfig:
        """Refuse what would be silently ignored, as verifiers' own harnesses do. The options
        inherited from verifiers' HarnessConfig configure a program verifiers starts in its
        runtime; here Harbor's Trial runs the agent in Harbor's sandbox, which they never reach.
        Compared by value, not by `model_fields_set`: the env-server wire sends every field."""
        for name, default in INHERITED_WITHOUT_EFFECT.items():
            if getattr(self, name, default) != default:
                raise ValueError(
                    f"`{name}` has no effect in the harbor-env harness (the agent runs in Harbor's sandbox, "
                    "not verifiers' runtime); remove it (task environment variables go in the task's "
                    "Dockerfile or task.toml)"
                )
        if self.timeout_multiplier != 1.0 and self.timeouts != "scaled":
            raise ValueError(
                f'`timeout_multiplier` is used only with timeouts = "scaled" (timeouts is "{self.timeouts}")'
            )
        return self


def verifier_timeout_sec(trial: Trial) -> float | None:
    """The trial's verifier timeout after Harbor's overrides and multipliers (a public property
    since Harbor 0.24, private before)."""
    timeout = getattr(trial, "verifier_timeout_sec", None) or getattr(trial, "_verifier_timeout_sec", None)
    return float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else None


def guard_verifier_inputs(trial: Trial) -> VerifierGuard:
    """When verification starts, stop every process the agent left and re-create the verifier's
    folders (verifier_isolation.py): a lingering writer, a planted reward.json (which wins over
    the reward.txt a test writes) or a link in place of /tests cannot reach the verifier.
    Harbor empties those folders itself only in newer versions, and stops nothing. The guard
    says whether the verifier ran out of time on the agent's account (`forfeit`).

    The environment's own processes are listed as soon as its `start` returns: Harbor has no
    hook between the environment's start and the agent's setup (ENVIRONMENT_START comes before
    the start), so this trial's environment gets its `start` wrapped."""
    environment = trial.agent_environment
    metadata = trial.task.config.metadata or {}
    guard = VerifierGuard(
        environment,
        trial.task.name,
        keep_workdir_paths=keeps_workdir_paths(metadata),
        unwritten_reward=unwritten_reward_file(trial.task.paths.tests_dir, metadata),
        timeout_sec=verifier_timeout_sec(trial),
    )
    start = environment.start

    async def start_then_list_own_processes(*args: Any, **kwargs: Any) -> None:
        await start(*args, **kwargs)
        await guard.environment_started()

    environment.start = start_then_list_own_processes  # type: ignore[method-assign]

    async def isolate(_event: object) -> None:
        if getattr(trial, "_is_agent_environment_stopped", False):
            return  # separate-verifier mode: the verifier gets a fresh environment
        await guard.verification_starts()

    trial.add_hook(TrialEvent.VERIFICATION_START, isolate)
    return guard


class HarborTrialHarness(vf.Harness[HarborTrialHarnessConfig]):
    """Runs a Harbor Trial per rollout; the agent's model calls go through the interception."""

    NEEDS_CONTAINER = False  # Harbor's environment is the sandbox, not verifiers' runtime
    EXECUTES_CODE = False  # nothing runs in the verifiers runtime; commands run in Harbor's sandbox
    APPENDS_SYSTEM_PROMPT = True  # Terminus-2 writes its own prompt around the instruction

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._unscored: dict[str, TrialError] = {}  # by trace id: errors `score` raises

    def trial_config(self, data: HarborTaskData, model: str, summarizing: SummarizePlan | None = None) -> TrialConfig:
        """The Harbor TrialConfig of one rollout (no secrets in it: Harbor writes it to disk)."""
        config = self.config
        multiplier = config.timeout_multiplier if config.timeouts == "scaled" else 1.0
        agent = config.agent.to_harbor(f"openai/{model}", summarizing)
        if config.timeouts == "ignored":
            agent.override_timeout_sec = IGNORED_AGENT_TIMEOUT_SEC
        return TrialConfig(
            task=TaskConfig(path=Path(data.task_dir)),
            trials_dir=Path(config.trials_dir).expanduser().resolve(),
            timeout_multiplier=multiplier,
            agent=agent,
            environment=config.environment.to_harbor(Path(data.task_dir)),
        )

    async def summarizing(self, ctx: Any) -> SummarizePlan | None:
        """The context window and threshold Terminus-2 summarizes with, when `summarize` is on:
        the configured window, else the inference server's (context_window.py)."""
        agent = self.config.agent
        if not (agent.summarize and agent.is_terminus):
            return None
        window, where = agent.context_tokens, "agent.context_tokens"
        if window is None:
            client = ctx.client
            window = await served_context_window(client.base_url, resolve_api_key(client), ctx.model, client.headers)
            where = f"max_model_len of {ctx.model} at {client.base_url}"
        max_tokens = getattr(ctx.sampling, "max_tokens", None)
        return summarize_plan(window, where, agent.summarize_below_free_tokens, max_tokens)

    async def launch(self, ctx, trace, runtime, endpoint, secret, mcp_urls, data, **kwargs) -> vf.ProgramResult:
        trial_config = self.trial_config(data, ctx.model, await self.summarizing(ctx))
        if self.config.environment.import_path is None:
            await before_trial(self.config.environment.type)
        credentials = ModelCredentials(base_url=endpoint, api_key=secret)
        for attempt in range(self.config.retries + 1):
            result, outcome = await self._run_trial(trial_config, credentials)
            # Retry only trials whose agent never started: nothing reached the trace yet, so a
            # second attempt cannot mix two episodes' tokens in one training sample.
            if outcome.error is None or result.agent_execution is not None or attempt == self.config.retries:
                break
            delay = self.config.retry_backoff_sec * 2**attempt
            logger.warning(
                "trial of %s failed before its agent started (%s); retry %d/%d in %.1f s",
                data.name,
                outcome.error,
                attempt + 1,
                self.config.retries,
                delay,
            )
            await asyncio.sleep(delay)
        outcome.metrics["harbor_attempts"] = float(attempt + 1)
        if outcome.error is None:
            context_metrics, context_error = note_outcome(trace, result.agent_result and result.agent_result.metadata)
            outcome.metrics.update(context_metrics)
            outcome.error = context_error
        trace.record_metrics(outcome.metrics)
        trace.info.update(outcome.info)
        if outcome.error is not None:
            logger.warning("episode of %s errored, not scored: %s", data.name, outcome.error)
            error = TrialError(outcome.error)
            if trace.stop_condition is not None:
                # verifiers ignores a harness's error once the interception has stopped the
                # rollout (a turn limit; verifiers 0.3's context stop), and the episode would pass
                # as done without a reward (0 to the trainer): `score` raises it instead.
                self._unscored[trace.id] = error
            raise error
        if "harbor_exception_type" in outcome.info:
            logger.info(
                "episode of %s scored %s after the agent's %s",
                data.name,
                outcome.reward,
                outcome.info["harbor_exception_type"],
            )
        trace.record_reward("reward", outcome.reward)
        return vf.ProgramResult(exit_code=0, stdout="", stderr="")

    async def score(self, trace: Any, runtime: Any) -> None:
        """verifiers' scoring stage, where an error fails the rollout even after a stop."""
        error = self._unscored.pop(trace.id, None)
        if error is not None:
            raise error
        await super().score(trace, runtime)

    async def _run_trial(self, trial_config: TrialConfig, credentials: ModelCredentials) -> tuple[TrialResult, Outcome]:
        """One Harbor Trial, its folder removed afterwards unless trials are kept."""
        trial_dir: Path | None = None
        try:
            with model_credentials(credentials):
                trial = await Trial.create(trial_config.model_copy(deep=True))
                trial_dir = trial.paths.trial_dir
                guard = guard_verifier_inputs(trial)
                reward_range = declared_range(trial.task.config.metadata, trial.task.paths.config_path)
                result = await trial.run()
            outcome = interpret(result, reward_range, forfeit=guard.forfeit)
            if self.config.keep_trials:
                outcome.info["harbor_trial_dir"] = str(trial_dir)
            return result, outcome
        finally:
            if trial_dir is not None and not self.config.keep_trials:
                await asyncio.to_thread(shutil.rmtree, trial_dir, ignore_errors=True)
            await heap_trimmer.maybe_trim()
