"""What the sandbox reads from a task besides its Dockerfile: task.toml's choices and the
image's users (/etc/passwd)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from harbor_env.errors import LocalSandboxError

VERIFIER_MODE_KEY = "verifier_sandbox"
VERIFIER_MODES = ("fresh", "shared")
NEEDS_IMAGE_KEY = "needs_image"
_NETWORK_KEYS = ("network_mode", "allow_internet")


def read_task_toml(task_dir: Path) -> dict[str, Any]:
    """task.toml of `task_dir` as a dict; {} when missing or unreadable (Harbor reports those)."""
    try:
        return tomllib.loads((task_dir / "task.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def verifier_mode(task_dir: Path, data: dict[str, Any]) -> str | None:
    """A task's own choice of verifier sandbox: `[metadata] verifier_sandbox` in task.toml."""
    metadata = data.get("metadata")
    mode = metadata.get(VERIFIER_MODE_KEY) if isinstance(metadata, dict) else None
    if mode is not None and mode not in VERIFIER_MODES:
        raise LocalSandboxError(
            f'{task_dir / "task.toml"}: [metadata] {VERIFIER_MODE_KEY} must be "fresh" or "shared", got {mode!r}'
        )
    return mode


def needs_image(task_dir: Path, data: dict[str, Any]) -> bool:
    """Whether the task says its tests need what its Dockerfile's RUN steps install (`[metadata]
    needs_image = true`): on the host's root those steps never ran, and it would score 0."""
    metadata = data.get("metadata")
    value = metadata.get(NEEDS_IMAGE_KEY, False) if isinstance(metadata, dict) else False
    if not isinstance(value, bool):
        raise LocalSandboxError(f"{task_dir / 'task.toml'}: [metadata] {NEEDS_IMAGE_KEY} must be true or false")
    return value


def states_network(data: Any) -> bool:
    """Whether task.toml says anything about the network (anywhere in it)."""
    if isinstance(data, dict):
        return any(key in _NETWORK_KEYS or states_network(value) for key, value in data.items())
    if isinstance(data, list):
        return any(states_network(value) for value in data)
    return False


def passwd_entry(base: Path, user: str | int) -> tuple[int, int, str] | None:
    """(uid, gid, home) of `user` (a name, or a uid as int) in `base`'s /etc/passwd."""
    try:
        lines = (base / "etc/passwd").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(":")
        if len(fields) < 7:
            continue
        if fields[0] == str(user) or (isinstance(user, int) and fields[2] == str(user)):
            return int(fields[2]), int(fields[3]), fields[5]
    return None
