"""Env configs, sampling settings and task rows for episodes of HarborEnvironment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import verifiers.v1 as vf
from verifiers.v1.utils.loaders import load_taskset, resolve_env_config

from harbor_env.testing.tasks import HOST_ROOT_TASKS, SAMPLE_TASKS, TASK

SAMPLING = vf.SamplingConfig(temperature=1.0, max_tokens=4096)  # every test and benchmark episode


def env_config(
    work: Path,
    *,
    tasks: str | Path = SAMPLE_TASKS,
    include: list[str] | None = None,
    agent: dict[str, Any] | None = None,
    harness: dict[str, Any] | None = None,
    keep_trials: bool = False,
) -> vf.EnvConfig:
    """A HarborEnvironment config on `tasks` (those in `include`; all when empty; when None, all
    but, of the sample tasks, those that need their image), running Terminus-2 in the local
    sandbox; trials/ and sandboxes/ live under `work`."""
    if include is None and Path(tasks) == SAMPLE_TASKS:
        include = HOST_ROOT_TASKS
    return resolve_env_config(
        {
            "taskset": {"id": "harbor-env", "path": str(tasks), "include": include or []},
            "agent": {
                **(agent or {}),
                "harness": {
                    "id": "harbor-env",
                    "environment": {"type": "local", "kwargs": {"sandbox_dir": str(work / "sandboxes")}},
                    "trials_dir": str(work / "trials"),
                    "keep_trials": keep_trials,
                    **(harness or {}),
                },
            },
        }
    )


def task_rows(config: Any) -> dict[str, dict[str, Any]]:
    """The taskset's rows by task name, as the orchestrator sends them to the env server."""
    return {t.data.name: t.data.model_dump(mode="json") for t in load_taskset(config.taskset)}


def task_data(name: str = TASK, tasks: Path = SAMPLE_TASKS) -> dict[str, Any]:
    """The row the orchestrator would send for one task."""
    return task_rows(env_config(Path("/nonexistent"), tasks=tasks, include=[name]))[name]
