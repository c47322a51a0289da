"""The model's context window inside a rollout: how large it is, how full the agent's chat is,
and what running out of it means for the episode.

One rule on every supported stack: an episode whose next prompt no longer fits the model's
context ends there, and the verifier scores what the agent did. Flooding its own context is the
agent's doing; an errored episode would be left out of GRPO, so the policy would never learn
from it and its group's baseline would be computed without it. verifiers 0.3 stops such a
rollout itself (stop condition `context_length`, "rollout stopped: context_length" to the agent);
0.4 relays the train client's refusal as an HTTP 400 and errors the rollout if the harness
fails on it. Both reach the agent as `ContextExhausted` (interception_llm.py): it ends cleanly,
Harbor's verifier scores, and the trace stops as `context_length` on both (`note_outcome`).
Only a failing inference server errors an episode.

Not the agent's doing: a task whose first prompt alone does not fit. Nothing was sampled (prime-rl
turns a trace without turns into an errored one anyway), so the episode errors, naming the
window.

Summarization (`agent.summarize`): Terminus-2 summarizes its history before a turn once fewer
than a threshold of tokens are free. That needs the true window (the inference server's
`max_model_len`, `served_context_window`) and a true count of the chat's tokens
(`count_chat_tokens`): Harbor's defaults are a 1,000,000-token window for any model LiteLLM does
not know and LiteLLM's OpenAI tokenizer, so it never summarized ahead of the limit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from harbor_env.errors import ConfigError

CONTEXT_STOP = "context_length"  # verifiers' stop condition for a prompt over the window
# How servers word a prompt that does not fit: renderers' pre-flight ("exceeds maximum context
# length", what verifiers' train client relays), vLLM, OpenAI; verifiers 0.3's own stop.
CONTEXT_PHRASES = (
    "maximum context length",
    "context length exceeded",
    "context_length_exceeded",
    "model's context length",
    "prompt is too long",
    f"rollout stopped: {CONTEXT_STOP}",
)
# Room Terminus-2 keeps for one more turn's terminal output: it cuts an output at 10,000 bytes,
# about 2,500-4,000 tokens of a 150k-vocabulary tokenizer.
OBSERVATION_TOKENS = 4096
METADATA_KEY = "context_exhausted"  # the agent's context metadata: why it ran out


def says_context_exhausted(message: str) -> bool:
    """Whether an error message from the model endpoint means "the prompt does not fit"."""
    lowered = message.lower()
    return any(phrase in lowered for phrase in CONTEXT_PHRASES)


# ---------------------------------------------------------------------------- the window's size

# Asked once per process and server, until it answers (a server still starting is asked again).
# No lock: an asyncio lock made at import binds to the first event loop that waits on it; two
# rollouts asking at once just both ask.
_served: dict[tuple[str, str], int] = {}


def context_window_of(models: Any, model: str) -> int | None:
    """`max_model_len` from a `GET /v1/models` answer: the named model's card, else the one value
    every card states (one vLLM engine serves one base model; a LoRA adapter's card may omit it)."""
    if not isinstance(models, dict):
        return None
    cards = [c for c in models.get("data") or [] if isinstance(c, dict)]
    lengths = {c.get("id"): c.get("max_model_len") for c in cards}
    named = lengths.get(model)
    if isinstance(named, int) and named > 0:
        return named
    stated = {n for n in lengths.values() if isinstance(n, int) and n > 0}
    return stated.pop() if len(stated) == 1 else None


async def served_context_window(base_url: str, api_key: str, model: str, headers: dict[str, str]) -> int | None:
    """The inference server's context window for `model` (`GET {base_url}/models`); None when
    the server does not say."""
    key = (base_url, model)
    if key not in _served:
        url = base_url.rstrip("/") + "/models"
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
                session.get(url, headers={**headers, "Authorization": f"Bearer {api_key}"}) as reply,
            ):
                answer = await reply.json(content_type=None) if reply.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError):
            answer = None
        window = context_window_of(answer, model)
        if window is None:
            return None
        _served[key] = window
    return _served[key]


@dataclass(frozen=True)
class SummarizePlan:
    """Terminus-2's summarization settings for one rollout."""

    window: int  # the model's context window, tokens
    free_tokens: int  # summarize before a turn once fewer tokens than this are free


def summarize_plan(window: int | None, where: str, free_tokens: int | None, max_tokens: int | None) -> SummarizePlan:
    """Check the window against the threshold. Unset, the threshold leaves room for the worst
    case: one more turn (a full terminal output and reply) and then the summarization's three
    calls, each a full reply (summary, questions, answers; the answers call holds the other two)."""
    if window is None:
        raise ConfigError(
            "agent.summarize needs the model's context window: the inference server's /v1/models "
            "states no max_model_len; set agent.context_tokens"
        )
    if free_tokens is None:
        reply = max_tokens or window // 16
        free_tokens = OBSERVATION_TOKENS + 4 * reply
    if free_tokens >= window // 2:
        raise ConfigError(
            f"agent.summarize_below_free_tokens ({free_tokens}) leaves less than half of the context window "
            f"({window} tokens, {where}) for the chat; lower it (or the sampling's max_tokens), or raise "
            "agent.context_tokens / the server's max_model_len"
        )
    return SummarizePlan(window, free_tokens)


# ---------------------------------------------------------------------------- the chat's size


@dataclass(frozen=True)
class MeasuredCall:
    """The last model call's chat, as the server counted it: `messages` sent plus the reply."""

    length: int  # messages in the chat after the call (those sent, then the reply)
    prompt: str  # the last message sent (the user turn) and the reply: identity marks the chat
    reply: str
    tokens: int  # prompt + completion tokens, the server's count
    chars_per_token: float  # of that prompt, for what was added since


def measure(messages: Sequence[dict[str, Any]], reply: str, prompt_tokens: int, completion_tokens: int) -> MeasuredCall:
    chars = sum(len(str(m.get("content") or "")) for m in messages)
    return MeasuredCall(
        length=len(messages) + 1,
        prompt=messages[-1].get("content") or "",
        reply=reply,
        tokens=prompt_tokens + completion_tokens,
        chars_per_token=chars / prompt_tokens if prompt_tokens > 0 else 4.0,
    )


def count_chat_tokens(messages: Sequence[dict[str, Any]], measured: MeasuredCall | None) -> int:
    """Tokens of a chat: the server's count of the last call's chat where this chat extends it,
    plus an estimate for what came after (characters at that call's characters per token).
    Each turn costs the new messages only, never a re-tokenization of the whole chat."""
    if measured is None:
        return math.ceil(sum(len(str(m.get("content") or "")) for m in messages) / 4.0)
    known, rest = 0, messages
    n = measured.length
    if (
        len(messages) >= n >= 2
        and messages[n - 1].get("content") is measured.reply
        and messages[n - 2].get("content") is measured.prompt
    ):
        known, rest = measured.tokens, messages[n:]
    chars = sum(len(str(m.get("content") or "")) for m in rest)
    return known + math.ceil(chars / measured.chars_per_token)


# ---------------------------------------------------------------------------- the episode's outcome


def note_outcome(trace: Any, agent_metadata: dict[str, Any] | None) -> tuple[dict[str, float], str | None]:
    """After the trial: the context metrics, and why the episode errors (its first prompt did not
    fit) or None. An episode that ran out of context later stops as `context_length` (verifiers 0.3
    has stopped it already; the first stop condition stays)."""
    metadata = agent_metadata or {}
    exhausted = metadata.get(METADATA_KEY)
    metrics = {
        "harbor_context_exhausted": float(exhausted is not None),
        "harbor_summarizations": float(metadata.get("summarization_count") or 0),
    }
    if exhausted is None:
        return metrics, None
    if trace.num_turns == 0:
        return metrics, f"the task's first prompt does not fit the model's context window: {exhausted}"
    trace.stop(CONTEXT_STOP)
    return metrics, None
