"""Local sandboxes that misbehave at start, as a flaky sandbox provider sometimes does."""

from __future__ import annotations

import asyncio
from pathlib import Path

from harbor_env.sandbox import LocalSandbox


class FlakyOnceSandbox(LocalSandbox):
    async def start(self, force_build: bool) -> None:
        marker = Path(self.config.sandbox_dir) / "failed-once"
        if not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
            raise RuntimeError("sandbox provider unavailable (injected, first start only)")
        await super().start(force_build)


class SlowStartSandbox(LocalSandbox):
    """Takes longer to start than the task's build_timeout_sec allows (an overloaded provider)."""

    async def start(self, force_build: bool) -> None:
        await asyncio.sleep(30)
        await super().start(force_build)
