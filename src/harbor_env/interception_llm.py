"""Terminus-2's model backend inside a rollout: OpenAI chat completions, straight to the
rollout's interception endpoint.

Harbor's default backend goes through LiteLLM, which routes a request among a hundred
providers, logs it, prices it and rebuilds the reply as its own objects: most of the CPU of a
model call, on the env server's event loop, for an endpoint that is always the same
OpenAI-compatible server (bench/scaling.py --compare litellm: env-server CPU −14% per episode
without it). This backend sends the request itself (one aiohttp session
per rollout, whose C HTTP parser costs a fraction of httpx's) and reads back only what
Terminus-2 uses.

Outcomes of a call, as Terminus-2 expects them:
- a reply: its content (and reasoning) and token usage (Terminus-2's own rollout details stay
  empty: the tokens and logprobs that training uses are in the verifiers trace);
- `finish_reason == "length"`: `OutputLengthExceededError` with the truncated reply;
- a prompt over the model's context (the server's refusal, or verifiers 0.3's
  `context_length` stop): `ContextExhausted`, the episode's end (context_window.py);
- the interception refused the turn (a stop condition or budget): `RolloutStopped`;
- anything else (unreachable, timed out, 5xx, malformed): `ModelCallFailed`, saying what
  happened: the status and an excerpt of the body. An inference server that answers a success
  status with a body that is not JSON reaches this client as the interception's HTTP 502 with
  the parser's error as its text; the message says that the server's reply could not be read,
  not that the server answered 502.
The last three are BaseExceptions so that no `except Exception` retry loop in Terminus-2 or
tenacity swallows or repeats them; `InterceptedTerminus2.run` turns them into outcomes. (Not
Harbor's ContextLengthExceededError: Terminus-2 answers that by unwinding and summarizing after
the fact, which verifiers 0.3 cannot serve, its rollout being stopped; so one stack would
summarize where the other ends the episode.)

Each reply's token usage is kept (`measured`): Terminus-2 counts its chat's tokens from it
(context_window.count_chat_tokens) to summarize ahead of the window, whose size is
`context_window` (the inference server's max_model_len).
"""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
from harbor.llms.base import BaseLLM, LLMResponse, OutputLengthExceededError
from harbor.models.metric import UsageInfo

from harbor_env.context_window import MeasuredCall, measure, says_context_exhausted
from harbor_env.errors import ContextExhausted, ModelCallFailed, RolloutStopped

ROLLOUT_STOPPED_MARKER = "rollout stopped"  # verifiers' interception: "rollout stopped: <why>"

# How verifiers' interception words an inference server's reply it could not read, which it
# answers with HTTP 502 and this text: the train client's JSON error ("Expecting value: line 1
# column 1 (char 0)"), the eval client's "malformed upstream response: ..." (pydantic's "expected
# value at line 1 column 1"). An error status of the server itself is relayed as that status.
UNREADABLE_REPLY = re.compile(r"malformed upstream response|\bline \d+ column \d+\b")

# Without a window (context_window) or model_info, Harbor's LiteLLM falls back to this context
# size for models it does not know, which is every model a trainer serves; it matters only
# when summarization is on, which then needs the window.
FALLBACK_CONTEXT_LIMIT = 1_000_000
# Options of Harbor's LiteLLM constructor that configure the transport, not the request
# (Harbor 0.25 adds the connection's api_key, model_api_format and skip_model_parsing itself).
TRANSPORT_OPTIONS = frozenset(
    {
        "api_key",
        "api_base",
        "base_url",
        "client",
        "custom_llm_provider",
        "drop_params",
        "max_retries",
        "model_api_format",
        "skip_model_parsing",
        "timeout",
    }
)


def request_parts(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """LiteLLM-style call options as a request body and headers. `extra_body` is the OpenAI
    SDK's name for fields it does not know: on the wire they are plain request fields."""
    body = dict(options)
    headers = dict(body.pop("extra_headers", None) or {})
    body.update(body.pop("extra_body", None) or {})
    return body, headers


def request_model_name(model_name: str) -> str:
    """The model name the server is asked for: Harbor names models `provider/name` for LiteLLM,
    and the `openai/` prefix only picks LiteLLM's OpenAI-compatible route."""
    return model_name.removeprefix("openai/")


class InterceptionLLM(BaseLLM):
    """Harbor `BaseLLM` that posts chat completions to one OpenAI-compatible endpoint."""

    def __init__(
        self,
        *,
        model_name: str,
        base_url: str,
        api_key: str,
        timeout_sec: float | None = None,
        temperature: float | None = None,
        session_id: str | None = None,
        reasoning_effort: str | None = None,
        model_info: dict[str, Any] | None = None,
        llm_kwargs: dict[str, Any] | None = None,
        context_window: int | None = None,
    ):
        super().__init__()
        self._model_name = model_name
        self._model_info = model_info or {}
        self._context_window = context_window
        self.measured: MeasuredCall | None = None  # the last reply's chat, as the server counted it
        # What every call carries: the constructor's options (as Harbor's LiteLLM sends them),
        # then the agent's own settings.
        self._body, self._headers = request_parts(
            {k: v for k, v in (llm_kwargs or {}).items() if k not in TRANSPORT_OPTIONS}
        )
        self._body["model"] = request_model_name(model_name)
        if session_id is not None:
            self._body["session_id"] = session_id
            self._headers["X-Session-ID"] = session_id  # routers' session affinity
        if temperature is not None:
            self._body["temperature"] = temperature
        if reasoning_effort is not None:
            self._body["reasoning_effort"] = reasoning_effort
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._headers |= {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._timeout_sec = timeout_sec
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # the headers hold the key: never print them
        return f"InterceptionLLM(model={self._body['model']!r}, url={self._url!r})"

    def session(self) -> aiohttp.ClientSession:
        """The rollout's HTTP session, opened at the first call (it needs the running loop).
        aiohttp's TLS context is one per process: no CA bundle is read per rollout."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout_sec))
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(
        self,
        prompt: str,
        message_history: list[Any] | None = None,
        response_format: Any = None,
        logging_path: Any = None,
        previous_response_id: str | None = None,
        **kwargs: Any,
    ) -> LLMResponse:
        """One chat completion: `message_history` plus `prompt` as the next user message.
        (`logging_path` and `previous_response_id` serve LiteLLM's call logs and the Responses
        API, neither of which a rollout uses.)"""
        body, headers = self._request(prompt, message_history or [], response_format, kwargs)
        try:
            async with self.session().post(self._url, data=json.dumps(body), headers=headers) as response:
                status, raw = response.status, await response.read()
        except TimeoutError as error:  # aiohttp's total timeout
            raise ModelCallFailed(
                f"model call timed out after {self._timeout_sec} s ({type(error).__name__})"
            ) from None
        except aiohttp.ClientError as error:
            raise ModelCallFailed(f"model endpoint unreachable: {type(error).__name__}: {error}") from None
        text = raw.decode(errors="replace")
        if status >= 400:
            self._raise_for_error(status, text)
        try:
            reply = json.loads(text)
            choice = reply["choices"][0]
            message = choice["message"]
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise ModelCallFailed(
                f"model endpoint answered HTTP {status} with a body that is not a chat completion "
                f"({type(error).__name__}: {error}): {text[:300]!r}"
            ) from None
        content = message.get("content") or ""
        usage = self._usage(reply.get("usage"))
        if usage is not None and usage.prompt_tokens > 0:
            self.measured = measure(body["messages"], content, usage.prompt_tokens, usage.completion_tokens)
        if choice.get("finish_reason") == "length":
            raise OutputLengthExceededError(
                f"Model {self._model_name} hit max_tokens limit. Response was truncated.", truncated_response=content
            )
        return LLMResponse(
            content=content,
            reasoning_content=message.get("reasoning_content"),
            model_name=reply.get("model"),
            usage=usage,
        )

    def _request(
        self, prompt: str, history: list[Any], response_format: Any, call_kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        body, headers = request_parts(call_kwargs)
        body = {**self._body, **body, "messages": [*history, {"role": "user", "content": prompt}]}
        if response_format is not None:
            body["response_format"] = response_format
        return body, {**self._headers, **headers}

    @staticmethod
    def _raise_for_error(status: int, text: str) -> None:
        try:
            error = json.loads(text).get("error")
            message = error.get("message", text) if isinstance(error, dict) else str(error or text)
        except (ValueError, AttributeError):
            message = text
        if status == 400 and says_context_exhausted(message):
            raise ContextExhausted(message)
        if ROLLOUT_STOPPED_MARKER in message:
            raise RolloutStopped(message)
        if status == 502 and UNREADABLE_REPLY.search(message):
            raise ModelCallFailed(
                "the inference server's reply could not be read: not an error status, but a body that is "
                f"not a chat completion ({message[:300]}); verifiers' interception answered HTTP {status} for it"
            )
        raise ModelCallFailed(f"model endpoint answered HTTP {status}: {message[:500]}")

    @staticmethod
    def _usage(usage: Any) -> UsageInfo | None:
        if not isinstance(usage, dict):
            return None
        details = usage.get("prompt_tokens_details") or {}
        return UsageInfo(
            prompt_tokens=usage.get("prompt_tokens") or 0,
            completion_tokens=usage.get("completion_tokens") or 0,
            cache_tokens=details.get("cached_tokens") or 0,
            cost_usd=0.0,  # a trainer's own inference server has no price list
        )

    def get_model_context_limit(self) -> int:
        if self._context_window is not None:
            return self._context_window
        limit = self._model_info.get("max_input_tokens") or self._model_info.get("max_tokens")
        return int(limit) if limit else FALLBACK_CONTEXT_LIMIT

    def get_model_output_limit(self) -> int | None:
        limit = self._model_info.get("max_output_tokens")
        return int(limit) if limit else None
