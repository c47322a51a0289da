"""Shared fixtures: small task folders, sandboxes, and a census of what sandboxes leave behind."""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import os
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# Tests never reach a model hub: tokenizers are built locally (env servers inherit this).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-list download at import

from harbor.environments.base import BaseEnvironment
from harbor.models.task.task import Task
from harbor.models.trial.paths import TrialPaths

from harbor_env.sandbox import LocalSandbox
from harbor_env.sandbox.commands import SERVER_PROGRAM

REPO = Path(__file__).resolve().parents[1]
SAMPLE_TASKS = REPO / "datasets" / "harbor_tasks"


def write_task(
    root: Path,
    name: str = "probe",
    *,
    dockerfile: str = "FROM debian:bookworm-slim\nWORKDIR /app\n",
    task_toml: str = "",
    files: dict[str, str] | None = None,
    test_sh: str = "#!/bin/bash\necho 1 > /logs/verifier/reward.txt\n",
    solve_sh: str = "#!/bin/bash\ntrue\n",
) -> Path:
    """A Harbor task folder; `files` are paths relative to the task folder."""
    task = root / name
    (task / "environment").mkdir(parents=True)
    (task / "tests").mkdir()
    (task / "solution").mkdir()
    (task / "task.toml").write_text(
        'version = "1.0"\n[verifier]\ntimeout_sec = 60.0\n[agent]\ntimeout_sec = 60.0\n' + textwrap.dedent(task_toml)
    )
    (task / "instruction.md").write_text("Probe task.\n")
    (task / "environment" / "Dockerfile").write_text(dockerfile)
    for path, text in {"tests/test.sh": test_sh, "solution/solve.sh": solve_sh, **(files or {})}.items():
        (task / path).parent.mkdir(parents=True, exist_ok=True)
        (task / path).write_text(text)
        if path.endswith(".sh"):
            (task / path).chmod(0o755)
    return task


# Harbor 0.25 hands an environment its log directories as `auto_mounts` (bound to the host
# only with `auto_mounting`); earlier versions as `mounts`, always bound.
HARBOR_AUTO_MOUNTING = "auto_mounting" in inspect.signature(BaseEnvironment.__init__).parameters


def make_sandbox(task_dir: Path, work: Path, session: str = "probe", **kwargs) -> LocalSandbox:
    """A LocalSandbox for `task_dir` with Harbor's log mounts, as a Trial would build it."""
    task = Task(task_dir)
    trial_paths = TrialPaths(work / "trials" / session)
    trial_paths.mkdir()
    mounts = [
        {"type": "bind", "source": str(trial_paths.verifier_dir), "target": "/logs/verifier"},
        {"type": "bind", "source": str(trial_paths.agent_dir), "target": "/logs/agent"},
    ]
    kwargs.setdefault("sandbox_dir", str(work / "sandboxes"))
    return LocalSandbox(
        environment_dir=task.paths.environment_dir,
        environment_name=task.name,
        session_id=session,
        trial_paths=trial_paths,
        task_env_config=task.config.environment.model_copy(deep=True),
        **{"auto_mounts" if HARBOR_AUTO_MOUNTING else "mounts": mounts},
        **kwargs,
    )


@contextlib.asynccontextmanager
async def running(sandbox: LocalSandbox) -> AsyncIterator[LocalSandbox]:
    await sandbox.start(force_build=False)
    try:
        yield sandbox
    finally:
        await sandbox.stop(delete=True)


def pid_namespace(pid: int | str) -> str | None:
    with contextlib.suppress(OSError):
        return os.readlink(f"/proc/{pid}/ns/pid")
    return None


def processes_in(namespace: str) -> list[int]:
    """Host PIDs of the processes living in a PID namespace."""
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and pid_namespace(p) == namespace]


def foreign_processes() -> set[tuple[int, str]]:
    """Processes in another PID namespace than ours, plus bwrap/nsenter/tmux anywhere."""
    ours = pid_namespace("self")
    found = set()
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if pid_namespace(p) != ours or any(t in cmdline for t in ("bwrap", "nsenter", "tmux")):
                found.add((int(p), cmdline.strip()))
    return found


def descendant_processes(root: int | None = None) -> set[tuple[int, str]]:
    """This test process's descendants (env servers, sandboxes and what runs in them), so that
    other work on a shared machine does not count (test_command_server.py checks that a command
    server ends with its owner)."""
    parents: dict[int, int] = {}
    for p in os.listdir("/proc"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if p.isdigit():
                parents[int(p)] = int(Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()[1])
    found, frontier = set(), {root or os.getpid()}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    described = set()
    for pid in found:
        with contextlib.suppress(OSError):
            described.add((pid, _cmdline(pid)))
    # Not the command servers: one lives as long as the process that started it. Their agents
    # (children with the same command line) end with their sandboxes: those count.
    return {
        (pid, cmd)
        for pid, cmd in described
        if not (_is_command_server(cmd) and not _is_command_server_pid(parents.get(pid)))
    }


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()


def _is_command_server(cmdline: str) -> bool:
    return str(SERVER_PROGRAM) in cmdline


def _is_command_server_pid(pid: int | None) -> bool:
    try:
        return pid is not None and _is_command_server(_cmdline(pid))
    except OSError:
        return False


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return tmp_path


# ---------------------------------------------------------------------------- HarborEnvironment episodes

if importlib.util.find_spec("verifiers") is not None:  # the sandbox-only stack has no verifiers
    from episode_fixtures import client, inference, served, served_work, tokenizer  # noqa: F401
