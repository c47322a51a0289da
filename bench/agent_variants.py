"""Terminus-2 variants for before/after comparisons (bench/scaling.py --compare), selected through
the harness's `agent.import_path`, so the env server loads them like any custom agent.

- `PerRolloutTlsTerminus2` puts back the cost removed from harbor_env/agent.py: a TLS context
  built for every rollout's HTTP client (httpx reads the whole CA bundle, tens of ms on the env
  server's event loop), where the agents now share one per process.
"""

from __future__ import annotations

from typing import Any

import httpx

from harbor_env.agent import InterceptedTerminus2


class PerRolloutTlsTerminus2(InterceptedTerminus2):
    def _init_llm(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        httpx.create_ssl_context()  # what each rollout's client cost before the change
        return super()._init_llm(*args, **kwargs)


VARIANTS = {"per-rollout-tls": "agent_variants:PerRolloutTlsTerminus2"}
