"""Terminus-2 variants for before/after comparisons (bench/scaling.py --compare), selected through
the harness's `agent.import_path`, so the env server loads them like any custom agent.

- `LiteLLMTerminus2` puts back what harbor_env's Terminus-2 used before `InterceptionLLM`:
  Harbor's LiteLLM backend on an OpenAI SDK client (httpx), with one TLS context per process.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx
from harbor.llms.lite_llm import LiteLLM
from openai import AsyncOpenAI, DefaultAsyncHttpxClient

from harbor_env.agent import InterceptedTerminus2, current_model_credentials


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


class LiteLLMTerminus2(InterceptedTerminus2):
    def _init_llm(self, llm_backend: Any, model_name: str, temperature: Any, *args: Any, **kwargs: Any):  # type: ignore[override]
        credentials = current_model_credentials()
        assert credentials is not None, "runs inside a rollout only"
        client = AsyncOpenAI(
            base_url=credentials.base_url,
            api_key=credentials.api_key,
            max_retries=0,
            http_client=DefaultAsyncHttpxClient(verify=_tls_context()),
        )
        return LiteLLM(
            model_name=model_name,
            temperature=temperature,
            api_base=credentials.base_url,
            api_key=credentials.api_key,
            client=client,
            max_retries=0,
            custom_llm_provider="openai",
        )


VARIANTS = {"litellm": "agent_variants:LiteLLMTerminus2"}
