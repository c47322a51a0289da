"""Terminus-2, wired to a rollout's interception endpoint without writing its key anywhere.

Harbor serializes an agent's config (config.json) and Terminus-2 writes its `llm_kwargs` into
trajectory.json, and a process-wide OPENAI_API_KEY would mix keys up between concurrent
rollouts. So the key travels in a context variable that the harness sets around the Trial:
asyncio copies it into every task the Trial starts, and nothing serializes it.

Two outcomes of a model call are not ordinary errors for the agent:
- the interception refused the turn (a budget or stop condition was hit): the agent ends
  cleanly, so Harbor's verifier still scores the episode;
- the call failed (inference server down, 5xx, garbage): the agent run fails at once, with no
  retries of its own (retrying is the inference client's business), and the episode errors.
Both are raised as BaseException inside the LLM call so that neither Harbor's nor tenacity's
`except Exception` retry loops swallow or repeat them; `run` turns them back into outcomes.
"""

from __future__ import annotations

import contextlib
import functools
import ssl
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpx
import litellm
from harbor.agents.terminus_2.terminus_2 import Terminus2
from harbor.llms.base import ContextLengthExceededError, OutputLengthExceededError
from harbor.llms.lite_llm import LiteLLM
from openai import AsyncOpenAI, DefaultAsyncHttpxClient

ROLLOUT_STOPPED_MARKER = "rollout stopped"
# litellm prints a "Give Feedback / Get Help" banner to stdout on every failed call; the
# failure itself is already logged once, with its cause, by the harness.
litellm.suppress_debug_info = True


@functools.cache
def shared_tls_context() -> ssl.SSLContext:
    """The TLS context of every agent's HTTP client. httpx builds a new one for each client by
    reading the whole CA bundle (about 60 ms of CPU, on the env server's event loop, for every
    rollout); one per process trusts the same certificates (SSL_CERT_FILE, SSL_CERT_DIR, certifi)."""
    return httpx.create_ssl_context()


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


class RolloutStopped(BaseException):
    """The interception refused a turn: the rollout hit a stop condition or a budget."""


class ModelCallFailed(BaseException):
    """A model call failed for a reason the agent cannot fix by retrying."""


class InferenceError(RuntimeError):
    """The agent's model call failed (inference server unreachable, 5xx, malformed reply)."""


class InterceptedLiteLLM(LiteLLM):
    """Harbor's LiteLLM backend, with failures of the interception made final."""

    def _handle_litellm_error(self, e: Exception):  # type: ignore[override]
        if ROLLOUT_STOPPED_MARKER in str(e):
            raise RolloutStopped(str(e)) from e
        try:
            super()._handle_litellm_error(e)
        except (ContextLengthExceededError, OutputLengthExceededError):
            raise  # the agent's own outcome: Terminus-2 handles it
        except Exception as translated:
            raise ModelCallFailed(f"{type(translated).__name__}: {translated}") from translated


class InterceptedTerminus2(Terminus2):
    """Terminus-2 whose LLM calls go to the rollout's interception endpoint.

    The endpoint and key come from :func:`model_credentials`; `api_base` given explicitly
    still wins for the URL (plain evaluation against any OpenAI-compatible server).
    `model_timeout_sec` bounds each model call: a hung inference server errors the episode
    instead of running the agent into its own timeout, which would be scored.
    """

    def __init__(self, *args: Any, model_timeout_sec: float | None = None, **kwargs: Any):
        self._model_timeout_sec = model_timeout_sec  # read by _init_llm, which super() calls
        super().__init__(*args, **kwargs)

    def _init_llm(self, llm_backend: Any, model_name: str, temperature: Any, collect_rollout_details: bool,
                  llm_kwargs: dict[str, Any] | None, api_base: str | None, session_id: str | None,
                  max_thinking_tokens: int | None, reasoning_effort: str | None,
                  model_info: dict[str, Any] | None, use_responses_api: bool):  # fmt: skip
        if str(getattr(llm_backend, "value", llm_backend)) != "litellm":
            # Other backends (tinker) do not speak to an OpenAI-style endpoint: Harbor's own path.
            return super()._init_llm(llm_backend, model_name, temperature, collect_rollout_details, llm_kwargs,
                                     api_base, session_id, max_thinking_tokens, reasoning_effort, model_info,
                                     use_responses_api)  # fmt: skip
        credentials = current_model_credentials()
        constructor_kwargs = dict(llm_kwargs or {})  # a copy: the options (and trajectory.json) stay key-free
        if temperature is not None:
            constructor_kwargs["temperature"] = temperature
        constructor_kwargs.setdefault("max_retries", 0)
        if self._model_timeout_sec is not None:
            constructor_kwargs["timeout"] = self._model_timeout_sec  # litellm's per-request timeout
        if credentials is not None:
            constructor_kwargs["api_key"] = credentials.api_key
            api_base = api_base or credentials.base_url
            # The agent's own HTTP client, closed when it finishes: litellm would otherwise cache
            # one client (and its open connections) per key, i.e. per rollout, for an hour.
            timeout = {"timeout": self._model_timeout_sec} if self._model_timeout_sec is not None else {}
            self._http_client = AsyncOpenAI(
                base_url=api_base, api_key=credentials.api_key, max_retries=0, **timeout,
                http_client=DefaultAsyncHttpxClient(verify=shared_tls_context()),
            )  # fmt: skip
            constructor_kwargs["client"] = self._http_client
        constructor_kwargs.setdefault("custom_llm_provider", "openai")
        return InterceptedLiteLLM(
            model_name=model_name,
            api_base=api_base,
            collect_rollout_details=collect_rollout_details,
            session_id=session_id,
            max_thinking_tokens=max_thinking_tokens,
            reasoning_effort=reasoning_effort,
            model_info=model_info,
            use_responses_api=use_responses_api,
            **constructor_kwargs,
        )

    _http_client: AsyncOpenAI | None = None

    async def run(self, instruction: str, environment: Any, context: Any) -> None:
        try:
            await super().run(instruction, environment, context)
        except RolloutStopped as stopped:
            self.logger.info(f"agent stopped by the rollout: {stopped}")
            context.metadata = {**(context.metadata or {}), "stopped_by_rollout": str(stopped)}
        except ModelCallFailed as failed:
            raise InferenceError(str(failed)) from None
        finally:
            if self._http_client is not None:
                await self._http_client.close()
