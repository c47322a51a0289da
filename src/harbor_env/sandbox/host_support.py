"""What this host must provide for a sandbox: bubblewrap and util-linux, a usable rootfs; and
what to tell the user when bubblewrap cannot start one."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from harbor_env.errors import LocalSandboxError

# Tool -> the package that installs it (Debian and Fedora name them alike).
REQUIRED_TOOLS = {"bwrap": "bubblewrap"}
NSENTER_TOOLS = {"nsenter": "util-linux", "setpriv": "util-linux"}  # for the nsenter command path


def require_tools(*, nsenter: bool) -> dict[str, str]:
    """Paths of the tools a sandbox needs; the first missing one is an error naming its package."""
    found: dict[str, str] = {}
    for tool, package in {**REQUIRED_TOOLS, **(NSENTER_TOOLS if nsenter else {})}.items():
        path = shutil.which(tool)
        if path is None:
            raise LocalSandboxError(
                f"local sandbox: `{tool}` not found on PATH; install it "
                f"(Debian/Ubuntu: apt-get install {package}; Fedora/RHEL: dnf install {package}) "
                "or use a container environment (Harbor's docker)"
            )
        found[tool] = path
    return found


def check_rootfs(rootfs: Path) -> None:
    """Refuse a `rootfs` option that is not an unpacked image root file system."""
    if not rootfs.is_dir():
        raise LocalSandboxError(
            f"local sandbox: rootfs {rootfs} is not a directory; unpack the task image "
            "there (e.g. `docker export $(docker create IMAGE) | tar -x -C DIR`) or drop "
            "the rootfs option to run on the host's root file system"
        )
    if not (rootfs / "bin/sh").exists():
        raise LocalSandboxError(f"local sandbox: rootfs {rootfs} has no /bin/sh; is it an unpacked image?")


def start_failure_message(stderr: str) -> str:
    """The error for a sandbox bubblewrap did not start, with the likeliest fix for `stderr`."""
    hint = "check that bubblewrap works here: `bwrap --ro-bind / / --unshare-all true`"
    lowered = stderr.lower()
    if "namespace" in lowered or "operation not permitted" in lowered or "permission denied" in lowered:
        hint = (
            "this host does not allow the namespaces bubblewrap needs; enable unprivileged user "
            "namespaces (sysctl kernel.unprivileged_userns_clone=1 and user.max_user_namespaces>0; "
            "on Ubuntu 24.04 also kernel.apparmor_restrict_unprivileged_userns=0), run as root, "
            "or use a container environment (Harbor's docker)"
        )
    return f"local sandbox: bubblewrap failed to start the sandbox: {stderr or 'no output'}; {hint}"


_warned: set[tuple[str, ...]] = set()


def warn_once(logger: logging.Logger, key: tuple[str, ...], message: str) -> None:
    """Log `message` once per process for `key` (a task's Dockerfile, a limit this host lacks)."""
    if key not in _warned:
        _warned.add(key)
        logger.warning(message)
