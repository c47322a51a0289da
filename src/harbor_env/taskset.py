"""HarborTaskset: Harbor task folders as verifiers v1 task rows.

The orchestrator (which loads the taskset) and the env server (which runs the rollouts) are
different processes: a row carries everything the harness needs, above all the absolute path
of the task folder, which must exist on the env server's host too.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterator
from pathlib import Path

import verifiers.v1 as vf
from harbor.models.task.task import Task as HarborTask_
from pydantic import Field, ValidationError

from harbor_env.rewards import RewardRuleError, declared_range

logger = logging.getLogger(__name__)

DEFAULT_TASKS_PATH = "datasets/harbor_tasks"


class InvalidTaskError(ValueError):
    """A task folder is not a valid Harbor task; the message names the folder and the problem."""


class HarborTaskData(vf.TaskData):
    """One Harbor task: the row the orchestrator sends to an env server."""

    task_dir: str
    """Absolute path of the Harbor task folder (task.toml, instruction.md, environment/, tests/)."""
    source: str = "local"
    """Where the task came from (`local` folders today; registry and Hugging Face sources later)."""
    harbor_image: str | None = None
    """The task's prebuilt image (task.toml `[environment].docker_image`), for the record only:
    Harbor's own environment builds or pulls it inside the Trial."""


class HarborTask(vf.Task[HarborTaskData, vf.State, vf.TaskConfig]):
    """A Harbor task. It needs no verifiers runtime of its own: Harbor's Trial brings the
    sandbox and scores the episode with the task's verifier."""

    NEEDS_CONTAINER = False


class HarborTasksetConfig(vf.TasksetConfig):
    """Which Harbor tasks to load (`[env.taskset]`)."""

    path: str = DEFAULT_TASKS_PATH
    """A folder of task folders, or one task folder. Relative paths resolve from the working
    directory (the project root when started through this project's entry points)."""
    include: list[str] = Field(default_factory=list)
    """Task names or glob patterns to keep (all when empty)."""
    exclude: list[str] = Field(default_factory=list)
    """Task names or glob patterns to drop, applied after `include`."""
    limit: int | None = Field(default=None, gt=0)
    """Load at most this many tasks (after include/exclude), e.g. for smoke runs."""
    skip_invalid: bool = False
    """Skip invalid task folders with a warning instead of failing the load."""


def _matches(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def validate_task_dir(task_dir: Path) -> HarborTask_:
    """Parse a task folder with Harbor's own models; raise InvalidTaskError naming the problem."""
    if not (task_dir / "task.toml").is_file():
        raise InvalidTaskError(f"{task_dir}: task.toml is missing")
    for required in ("instruction.md", "tests/test.sh"):
        if not (task_dir / required).is_file():
            raise InvalidTaskError(f"{task_dir}: {required} is missing")
    try:
        task = HarborTask_(task_dir)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'task.toml'}: {error['msg']}" for error in exc.errors()
        )
        raise InvalidTaskError(f"{task_dir / 'task.toml'}: {problems}") from None
    except Exception as exc:  # tomllib errors, Harbor's own checks
        raise InvalidTaskError(f"{task_dir / 'task.toml'}: {exc}") from None
    if task.has_steps:
        raise InvalidTaskError(f"{task_dir}: multi-step tasks ([[steps]]) are not supported yet")
    if not task.instruction.strip():
        raise InvalidTaskError(f"{task_dir / 'instruction.md'}: empty instruction")
    try:
        declared_range(task.config.metadata, task_dir / "task.toml")
    except RewardRuleError as exc:
        raise InvalidTaskError(str(exc)) from None
    return task


def discover_task_dirs(config: HarborTasksetConfig) -> list[Path]:
    """The task folders selected by `config`, sorted by name."""
    root = Path(config.path).expanduser().resolve()
    if not root.exists():
        raise InvalidTaskError(f"taskset path {config.path} does not exist (resolved to {root}); set [env.taskset] path")
    if any((root / part).exists() for part in ("task.toml", "instruction.md", "environment")):
        candidates = [root]  # one task folder (validated, with its problems named, below)
    else:
        candidates = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if config.include:
        candidates = [p for p in candidates if _matches(p.name, config.include)]
    candidates = [p for p in candidates if not _matches(p.name, config.exclude)]
    if not candidates:
        raise InvalidTaskError(
            f"no tasks in {root} (include={config.include or ['*']}, exclude={config.exclude}); "
            "a task folder holds task.toml, instruction.md, environment/ and tests/test.sh"
        )
    return candidates


class HarborTaskset(vf.Taskset[HarborTask, HarborTasksetConfig]):
    """Harbor task folders from a path, validated at load."""

    def load(self) -> Iterator[HarborTask]:
        loaded = 0
        for task_dir in discover_task_dirs(self.config):
            if self.config.limit is not None and loaded >= self.config.limit:
                break
            try:
                task = validate_task_dir(task_dir)
            except InvalidTaskError as exc:
                if not self.config.skip_invalid:
                    raise
                logger.warning("skipping invalid task: %s", exc)
                continue
            data = HarborTaskData(
                idx=loaded,  # verifiers 0.3 does not number rows itself
                name=task_dir.name,
                prompt=task.instruction,
                task_dir=str(task_dir),
                harbor_image=task.config.environment.docker_image,
            )
            loaded += 1
            yield HarborTask(data, self.config.task)
        if loaded == 0:
            raise InvalidTaskError(f"every task under {self.config.path} is invalid; nothing to run")
