"""HarborTaskset: Harbor task folders as verifiers v1 task rows.

The orchestrator (which loads the taskset) and the env server (which runs the rollouts) are
different processes: a row carries everything the harness needs, above all the absolute path
of the task folder, which must exist on the env server's host too.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import verifiers.v1 as vf
from harbor.models.task.task import Task as HarborTask_
from pydantic import Field, ValidationError

from harbor_env.datasets.cache import Selection, SourcedTask
from harbor_env.datasets.registry import load_registry_tasks, registry_label
from harbor_env.datasets.swe_source import load_swe_tasks, source_label
from harbor_env.datasets.swe_template import SweTemplateConfig
from harbor_env.errors import InvalidTaskError, RewardRuleError
from harbor_env.rewards import declared_range

logger = logging.getLogger(__name__)

DEFAULT_TASKS_PATH = "datasets/harbor_tasks"


class HarborTaskData(vf.TaskData):
    """One Harbor task: the row the orchestrator sends to an env server."""

    task_dir: str
    """Absolute path of the Harbor task folder (task.toml, instruction.md, environment/, tests/)."""
    source: str = "local"
    """The source: `local`, `registry:<dataset>` or `swe:<data set>`."""
    origin: str | None = None
    """Where this task came from: git URL, commit and path of a registry task; the data set and
    instance id of a converted row; the folder of a local task."""
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
    dataset: str | None = None
    """A Harbor registry dataset instead of `path`: `terminal-bench@2.0` (name@version, the
    newest version without one) or a Harbor Hub id `org/name@ref`. `include`/`exclude`/`limit`
    pick tasks before anything is downloaded."""
    registry_url: str | None = None
    """A registry JSON URL other than Harbor's (only for name@version datasets)."""
    registry_path: str | None = None
    """A local registry JSON file instead of a URL."""
    cache_dir: str | None = None
    """Where downloaded and converted tasks are kept, shared by every process on the node
    (default: $HARBOR_ENV_CACHE, else ~/.cache/harbor-env)."""
    refresh: bool = False
    """Read the dataset's task list from the registry again; tasks not pinned to a commit are
    downloaded again (Harbor keeps pinned ones). A SWE-style data set: convert its rows again,
    with the repositories fetched again."""
    hf_dataset: str | None = None
    """A SWE-bench-style Hugging Face data set instead of `path`, converted into task folders
    (see `swe`); `include`/`exclude`/`limit` pick rows by instance_id."""
    split: str = "test"
    """The data set's split."""
    revision: str | None = None
    """The data set's revision (branch, tag or commit) on the Hub."""
    data_file: str | None = None
    """A local parquet / JSONL file of SWE-bench-style rows instead of `hf_dataset`."""
    swe: SweTemplateConfig = Field(default_factory=SweTemplateConfig)
    """How SWE-style rows become task folders (preset, column mapping, test command, ...)."""


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
        raise InvalidTaskError(
            f"taskset path {config.path} does not exist (resolved to {root}); set [env.taskset] path"
        )
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


def sourced_tasks(config: HarborTasksetConfig) -> list[SourcedTask]:
    """The task folders `config` selects, from its source: a registry dataset, a SWE-style data
    set, or local folders (`path`)."""
    if config.dataset and (config.hf_dataset or config.data_file):
        raise InvalidTaskError("[env.taskset] set one source: dataset, hf_dataset or data_file (or path)")
    selection = Selection(config.include, config.exclude, config.limit, config.cache_dir)
    if config.dataset:
        return load_registry_tasks(
            config.dataset,
            registry_url=config.registry_url,
            registry_path=config.registry_path,
            selection=selection,
            refresh=config.refresh,
        )
    if config.hf_dataset or config.data_file:
        return load_swe_tasks(
            hf_dataset=config.hf_dataset,
            data_file=config.data_file,
            split=config.split,
            revision=config.revision,
            template=config.swe,
            selection=selection,
            refresh=config.refresh,
        )
    return [SourcedTask(task_dir, "local", str(task_dir)) for task_dir in discover_task_dirs(config)]


@dataclass(frozen=True)
class LoadSummary:
    """What a load found, for the dry run: the source, where from, how many, how many fetched now."""

    source: str
    where: str
    tasks: int
    fetched: int
    cache: str | None = None
    """The cache folder holding the tasks (None for local folders)."""

    def describe(self) -> str:
        """One line for the dry run: `3 tasks from registry:tiny@1.0 (...), in <cache>: 1 fetched now, 2 cached`."""
        if self.cache is None:
            return f"{self.tasks} tasks from {self.where}"
        state = "all cached" if self.fetched == 0 else f"{self.fetched} fetched now, {self.tasks - self.fetched} cached"
        return f"{self.tasks} tasks from {self.source.split(':', 1)[0]} {self.where}, in {self.cache}: {state}"


def _summarize(config: HarborTasksetConfig, tasks: list[SourcedTask], loaded: int) -> LoadSummary:
    if config.dataset:
        where = f"{config.dataset} ({registry_label(config.registry_url, config.registry_path)})"
    elif config.hf_dataset or config.data_file:
        where = source_label(config.hf_dataset, config.data_file, config.split)
    else:
        where = config.path
    fetched = sum(not task.cached for task in tasks)
    source, cache = (tasks[0].source, tasks[0].cache) if tasks else ("local", None)
    return LoadSummary(source, where, loaded, fetched, str(cache) if cache else None)


class HarborTaskset(vf.Taskset[HarborTask, HarborTasksetConfig]):
    """Harbor tasks from a source (task folders, a registry dataset, a SWE-style data set),
    validated at load."""

    summary: LoadSummary | None = None

    def load(self) -> Iterator[HarborTask]:
        loaded = 0
        tasks = sourced_tasks(self.config)
        for sourced in tasks:
            if self.config.limit is not None and loaded >= self.config.limit:
                break
            task_dir = sourced.task_dir
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
                source=sourced.source,
                origin=sourced.origin,
                harbor_image=task.config.environment.docker_image,
            )
            loaded += 1
            yield HarborTask(data, self.config.task)
        self.summary = _summarize(self.config, tasks, loaded)
        if loaded == 0:
            raise InvalidTaskError(f"every task under {self.summary.where} is invalid; nothing to run")
