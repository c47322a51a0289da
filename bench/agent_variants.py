"""Terminus-2 variants for before/after comparisons (bench/scaling.py --compare), selected through
the harness's `agent.import_path`, so the env server loads them like any custom agent.

The cost they toggle: every rollout's agent builds its own OpenAI HTTP client, and httpx builds a
fresh TLS context for each (it reads the whole CA bundle, tens of ms on the env server's event
loop), although the interception endpoint is plain HTTP.

- `SharedTlsTerminus2`: the proposed change, applied from outside: one TLS context per process.
  Compare with it before the change lands in harbor_env/agent.py.
- `PerRolloutTlsTerminus2`: builds (and drops) one TLS context per rollout, the old cost. Compare
  with it after the change has landed.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx
from openai import AsyncOpenAI, DefaultAsyncHttpxClient

import harbor_env.agent as agent_module
from harbor_env.agent import InterceptedTerminus2


@functools.cache
def shared_tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def _client_with_shared_tls(*args: Any, **kwargs: Any) -> AsyncOpenAI:
    kwargs.setdefault("http_client", DefaultAsyncHttpxClient(verify=shared_tls_context()))
    return AsyncOpenAI(*args, **kwargs)


class SharedTlsTerminus2(InterceptedTerminus2):
    def _init_llm(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        # _init_llm is synchronous: no other rollout runs while the name is swapped.
        original = agent_module.AsyncOpenAI
        agent_module.AsyncOpenAI = _client_with_shared_tls  # type: ignore[assignment]
        try:
            return super()._init_llm(*args, **kwargs)
        finally:
            agent_module.AsyncOpenAI = original  # type: ignore[misc]


class PerRolloutTlsTerminus2(InterceptedTerminus2):
    def _init_llm(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        httpx.create_ssl_context()
        return super()._init_llm(*args, **kwargs)


VARIANTS = {
    "shared-tls": "agent_variants:SharedTlsTerminus2",
    "per-rollout-tls": "agent_variants:PerRolloutTlsTerminus2",
}
