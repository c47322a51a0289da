"""What the dataset sources share: the node-wide cache folder, its file lock, and the task
folders they hand to the taskset with where each came from."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import fnmatch
import json
import os
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CACHE_ENV = "HARBOR_ENV_CACHE"
DEFAULT_CACHE = "~/.cache/harbor-env"


@dataclass(frozen=True)
class SourcedTask:
    """A task folder on this host, and where it came from."""

    task_dir: Path
    source: str
    """The source kind and id, e.g. `registry:terminal-bench@2.0`, `swe:<data set>`, `local`."""
    origin: str
    """Where this task came from (git URL, commit and path; data set row; folder)."""
    cached: bool = True
    """False when this load downloaded or wrote it."""
    cache: Path | None = None
    """The source's cache folder holding it (None for local folders)."""


@dataclass(frozen=True)
class Selection:
    """Which tasks or rows of a source to load, and where its cache is."""

    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    limit: int | None = None
    cache_dir: str | None = None

    def pick(self, names: list[str]) -> list[str]:
        """`names` kept by `include` (all when empty), less `exclude` (names or globs), at most `limit`."""
        chosen = [n for n in names if not self.include or any(fnmatch.fnmatchcase(n, p) for p in self.include)]
        chosen = [n for n in chosen if not any(fnmatch.fnmatchcase(n, p) for p in self.exclude)]
        return chosen[: self.limit] if self.limit is not None else chosen


def cache_root(cache_dir: str | None) -> Path:
    """`cache_dir`, else $HARBOR_ENV_CACHE, else ~/.cache/harbor-env: one per node, shared by its processes."""
    return Path(cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser().resolve()


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (its lock file sits beside it) across processes on this host."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_json_atomically(path: Path, data: Any) -> None:
    """Readers see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def run_sync[T](coroutine: Coroutine[Any, Any, T]) -> T:
    """Run Harbor's async download code from sync code, also when called inside an event loop
    (verifiers may load tasksets from async code)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, for errors that quote a library's."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
