"""A local sandbox whose first start fails, as a flaky sandbox provider's sometimes does."""

from __future__ import annotations

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
