"""A Harbor environment that runs tasks on this host without containers (bubblewrap)."""

from harbor_env.errors import LocalSandboxError
from harbor_env.sandbox.config import LocalSandboxConfig
from harbor_env.sandbox.local import LocalSandbox

__all__ = ["LocalSandbox", "LocalSandboxConfig", "LocalSandboxError"]
