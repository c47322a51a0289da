"""Variants for before/after comparisons (bench/scaling.py --compare NAME): each is the harness
config that puts one earlier cost back, so the env server runs it like any configuration.

- `litellm`: `LiteLLMTerminus2` (through the harness's `agent.import_path`) puts back what
  harbor_env's Terminus-2 used before `InterceptionLLM`: Harbor's LiteLLM backend on an OpenAI
  SDK client (httpx), with one TLS context per process.
- `nsenter`: the local sandbox's command path before the command server: nsenter + setpriv
  (and a cgroup-joining shell, and a `cd` wrapper) per command, spawned by the env server.
"""

from __future__ import annotations

import functools
import ssl
from pathlib import Path
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


def variant_harness(name: str, work: Path, terminus_options: dict[str, Any]) -> dict[str, Any]:
    """The harness config of variant `name` for an env server working under `work`."""
    if name == "litellm":
        return {"agent": {"import_path": "agent_variants:LiteLLMTerminus2", "kwargs": terminus_options}}
    if name == "nsenter":
        kwargs = {"sandbox_dir": str(work / "sandboxes"), "command_path": "nsenter"}
        return {"environment": {"type": "local", "kwargs": kwargs}}
    raise KeyError(name)


VARIANTS = ("litellm", "nsenter")
