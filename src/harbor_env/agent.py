"""Terminus-2, wired to a rollout's interception endpoint without writing its key anywhere.

Harbor serializes an agent's config (config.json) and Terminus-2 writes its `llm_kwargs` into
trajectory.json, and a process-wide OPENAI_API_KEY would mix keys up between concurrent
rollouts. So the key travels in a context variable that the harness sets around the Trial:
asyncio copies it into every task the Trial starts, and nothing serializes it.

Inside a rollout the agent's model is `InterceptionLLM` (interception_llm.py): plain OpenAI
chat completions to the endpoint, where Harbor's default LiteLLM backend spends most of a
call's CPU on routing, logging and pricing. Two outcomes of a call are not ordinary errors for the agent:
- the interception refused the turn (a budget or stop condition was hit), or the next prompt no
  longer fits the model's context: the agent ends cleanly, so Harbor's verifier still scores the
  episode (context_window.py);
- the call failed (inference server down, 5xx, garbage, a hang): the agent run fails at once,
  with no retries of its own (retrying is the inference client's business), and the episode
  errors.
Outside a rollout (no credentials: the agent run by Harbor itself) it is Harbor's own LiteLLM.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from harbor.agents.terminus_2.terminus_2 import Terminus2

from harbor_env.context_window import METADATA_KEY, count_chat_tokens
from harbor_env.errors import ContextExhausted, InferenceError, LocalSandboxError, ModelCallFailed, RolloutStopped
from harbor_env.interception_llm import InterceptionLLM


@dataclass(frozen=True)
class ModelCredentials:
    """Where an agent's model calls go: the interception endpoint and its per-rollout key."""

    base_url: str
    api_key: str

    def __repr__(self) -> str:  # never print the key
        return f"ModelCredentials(base_url={self.base_url!r}, api_key=<hidden>)"


_credentials: ContextVar[ModelCredentials | None] = ContextVar("harbor_env_model_credentials", default=None)


@contextlib.contextmanager
def model_credentials(credentials: ModelCredentials) -> Iterator[None]:
    """Make `credentials` visible to agents created inside this block (and its tasks)."""
    token = _credentials.set(credentials)
    try:
        yield
    finally:
        _credentials.reset(token)


def current_model_credentials() -> ModelCredentials | None:
    """The credentials of the rollout this code runs in, for custom in-process agents."""
    return _credentials.get()


class InterceptedTerminus2(Terminus2):
    """Terminus-2 whose LLM calls go to the rollout's interception endpoint.

    The endpoint and key come from :func:`model_credentials`; `api_base` given explicitly
    still wins for the URL (plain evaluation against any OpenAI-compatible server).
    `model_timeout_sec` bounds each model call: a hung inference server errors the episode
    instead of running the agent into its own timeout, which would be scored.
    `context_window` is the model's context in tokens (summarization plans against it).
    """

    def __init__(
        self, *args: Any, model_timeout_sec: float | None = None, context_window: int | None = None, **kwargs: Any
    ):
        # Read by _init_llm, which super() calls. Only an endpoint given in the agent's own
        # kwargs replaces the rollout's: Harbor 0.25 also fills `api_base` from the host's
        # OPENAI_BASE_URL, which would take the calls (and the rollout's key) elsewhere.
        self._model_timeout_sec = model_timeout_sec
        self._context_window = context_window
        self._explicit_api_base = kwargs.get("api_base") or kwargs.get("base_url")
        super().__init__(*args, **kwargs)

    def _init_llm(
        self,
        llm_backend: Any,
        model_name: str,
        temperature: Any,
        collect_rollout_details: bool,
        llm_kwargs: dict[str, Any] | None,
        api_base: str | None,
        session_id: str | None,
        max_thinking_tokens: int | None,
        reasoning_effort: str | None,
        model_info: dict[str, Any] | None,
        use_responses_api: bool,
    ):
        credentials = current_model_credentials()
        litellm_backend = str(getattr(llm_backend, "value", llm_backend)) == "litellm"
        if credentials is None or not litellm_backend:
            # Not in a rollout (Harbor runs the agent itself), or a backend that does not speak
            # to an OpenAI-style endpoint (tinker): Harbor's own LLM.
            if litellm_backend and self._model_timeout_sec is not None:
                llm_kwargs = {"timeout": self._model_timeout_sec, **(llm_kwargs or {})}
            return super()._init_llm(
                llm_backend,
                model_name,
                temperature,
                collect_rollout_details,
                llm_kwargs,
                api_base,
                session_id,
                max_thinking_tokens,
                reasoning_effort,
                model_info,
                use_responses_api,
            )
        if use_responses_api:
            raise ValueError(
                "use_responses_api: inside a rollout the agent speaks chat completions (the "
                "interception records those); remove the option from the agent's kwargs"
            )
        # The agent's own HTTP client, closed when it finishes (run's finally).
        self._interception_llm = InterceptionLLM(
            model_name=model_name,
            base_url=self._explicit_api_base or credentials.base_url,
            api_key=credentials.api_key,
            timeout_sec=self._model_timeout_sec,
            temperature=temperature,
            session_id=session_id,
            reasoning_effort=reasoning_effort,
            model_info=model_info,
            llm_kwargs=llm_kwargs,
            context_window=self._context_window,
        )
        return self._interception_llm

    _interception_llm: InterceptionLLM | None = None
    _in_turn_loop = False

    async def _run_agent_loop(self, *args: Any, **kwargs: Any) -> Any:
        self._in_turn_loop = True
        try:
            return await super()._run_agent_loop(*args, **kwargs)
        finally:
            self._in_turn_loop = False

    def _dump_trajectory(self) -> None:
        """trajectory.json once, when the agent finishes (Terminus-2's `run` always writes it then),
        not again after every turn: each turn's rewrite serializes the whole trajectory so far
        (quadratic in the turns, on the env server's event loop), to survive a crash that a
        rollout does not recover from anyway (it is errored and run afresh)."""
        if not self._in_turn_loop:
            super()._dump_trajectory()

    def _count_total_tokens(self, chat: Any) -> int:
        """The chat's tokens as the inference server counts them (Terminus-2's summarization
        threshold), not LiteLLM's OpenAI tokenizer, which is another model's and re-reads the
        whole chat every turn."""
        if self._interception_llm is None:
            return super()._count_total_tokens(chat)
        return count_chat_tokens(chat.messages, self._interception_llm.measured)

    async def setup(self, environment: Any) -> None:
        # On a task's image there is usually no network to install tmux with: Terminus-2 would
        # spend its install budget and fail with "Failed to start tmux session". Say what to add.
        if getattr(environment, "on_image", False):
            found = await environment.exec("command -v tmux", user="root")
            if found.return_code != 0:
                raise LocalSandboxError(
                    f"{environment.environment_dir.parent}: the task's image has no tmux, which Terminus-2 "
                    "drives; add it to environment/Dockerfile (Debian/Ubuntu: RUN apt-get update && "
                    "apt-get install -y tmux; Alpine: RUN apk add tmux)"
                )
        await super().setup(environment)

    async def run(self, instruction: str, environment: Any, context: Any) -> None:
        try:
            await super().run(instruction, environment, context)
        except ContextExhausted as exhausted:
            self.logger.info(f"agent out of context: {exhausted}")
            context.metadata = {**(context.metadata or {}), METADATA_KEY: str(exhausted)}
        except RolloutStopped as stopped:
            self.logger.info(f"agent stopped by the rollout: {stopped}")
            context.metadata = {**(context.metadata or {}), "stopped_by_rollout": str(stopped)}
        except ModelCallFailed as failed:
            raise InferenceError(str(failed)) from None
        finally:
            if self._interception_llm is not None:
                await self._interception_llm.aclose()
