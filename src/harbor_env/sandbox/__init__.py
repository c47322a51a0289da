"""A Harbor environment that runs tasks on this host without containers (bubblewrap)."""

from harbor_env.sandbox.config import LocalSandboxConfig
from harbor_env.sandbox.local import LocalSandbox, SandboxError

__all__ = ["LocalSandbox", "LocalSandboxConfig", "SandboxError"]
