"""Unpacked image roots for the local sandbox, made once per image and shared by every sandbox.

A task's image is identified by what it is made from: the digest of its build context (the
environment folder, Dockerfile included), or the name of its prebuilt `docker_image`. The
first sandbox that needs it builds or fetches it with the image tool at hand
(image_engine.py) and unpacks its root file system; every later one, in any process, finds it.

    <cache>/keys/<source digest>.json   which image a source made
    <cache>/roots/<image id>/rootfs/    the root file system (never written after it is complete)
    <cache>/roots/<image id>/image.json its configuration (ENV, WORKDIR, USER), size, source
    <cache>/roots/<image id>/lease      held shared (flock) by every sandbox running on it
    <cache>/locks/<source digest>.lock  held while that source is built: one build at a time
    <cache>/partial/                    roots being unpacked, renamed into roots/ when complete

A root appears in roots/ by one rename, so a half-unpacked one is never used. Past the cache's
size bound the least recently used roots that no sandbox holds are removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harbor_env.sandbox.host_files import remove_tree
from harbor_env.sandbox.image_engine import (
    IMAGE_TAG_PREFIX,
    Engine,
    ImageConfig,
    ImageEngine,
    ImageError,
    find_engine,
    host_architecture,
)

CACHE_ENV_VAR = "HARBOR_ENV_IMAGE_CACHE"
DEFAULT_MAX_GB = 50.0


def default_cache_dir() -> Path:
    """$HARBOR_ENV_IMAGE_CACHE, else harbor-env/images in the user's cache folder."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "harbor-env" / "images"


@dataclass(frozen=True)
class ImageSource:
    """What a task's image is made from: its Dockerfile and build context, or a prebuilt image."""

    task: str  # for messages: the task's folder
    context: Path  # the environment folder
    docker_image: str | None  # a prebuilt image, which wins over the Dockerfile (as in Harbor)

    @classmethod
    def for_task(cls, task_dir: Path, docker_image: str | None) -> ImageSource:
        """The image of the task folder `task_dir` (its environment/ folder, or `docker_image`)."""
        return cls(task=str(task_dir), context=task_dir / "environment", docker_image=docker_image or None)

    @property
    def dockerfile(self) -> Path:
        return self.context / "Dockerfile"

    def digest(self) -> str:
        """Changes whenever the image it makes could: the prebuilt name, or every file of the
        build context (path, mode, contents, link targets)."""
        hasher = hashlib.sha256()
        if self.docker_image:
            hasher.update(b"image\0" + self.docker_image.encode())
            return hasher.hexdigest()[:32]
        hasher.update(b"context\0")
        for path in sorted(self.context.rglob("*")):
            relative = path.relative_to(self.context).as_posix()
            info = path.lstat()
            hasher.update(f"{relative}\0{info.st_mode:o}\0".encode())
            if path.is_symlink():
                hasher.update(os.readlink(path).encode())
            elif path.is_file():
                with path.open("rb") as handle:
                    for chunk in iter(lambda: handle.read(1 << 20), b""):
                        hasher.update(chunk)
            hasher.update(b"\0")
        return hasher.hexdigest()[:32]


@dataclass
class ImageRoot:
    """A complete image root in the cache, leased: it is not evicted until `release()`."""

    rootfs: Path
    config: ImageConfig
    made: bool  # this call built or fetched it (False: found in the cache)
    _lease: int | None

    def release(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            os.close(lease)


@dataclass(frozen=True)
class CacheEntry:
    image_id: str
    size_bytes: int
    last_used: float
    source: str
    in_use: bool


class ImageCache:
    """The image roots under `directory`, at most `max_bytes` of them (None: unbounded)."""

    def __init__(self, directory: Path, *, max_bytes: int | None, engine: Engine = "auto"):
        self.directory = directory
        self.max_bytes = max_bytes
        self.engine = engine
        for sub in ("keys", "roots", "locks", "partial"):
            (directory / sub).mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ use

    def root_for(self, source: ImageSource, *, refresh: bool = False) -> ImageRoot:
        """The task's image root, built or fetched on first use; leased to the caller."""
        key = source.digest()
        if not refresh:
            found = self._lease_by_key(key)
            if found is not None:
                return found
        with _locked(self.directory / "locks" / f"{key}.lock"):
            # Another process may have made it while this one waited for the lock.
            found = None if refresh else self._lease_by_key(key)
            if found is not None:
                return found
            image_id = self._make(source, key, refresh=refresh)
            _write_json(self.directory / "keys" / f"{key}.json", {"image_id": image_id, "source": _describe(source)})
            root = self._lease(image_id, made=True)
        if root is None:  # evicted between the unpack and the lease: only by a concurrent prune
            raise ImageError(f"{source.task}: its image root was removed while it was being made; try again")
        self.evict(keep={image_id})
        return root

    def _lease_by_key(self, key: str) -> ImageRoot | None:
        try:
            image_id = json.loads((self.directory / "keys" / f"{key}.json").read_text())["image_id"]
        except (OSError, ValueError, KeyError):
            return None
        return self._lease(str(image_id), made=False)

    def _lease(self, image_id: str, *, made: bool) -> ImageRoot | None:
        folder = self.directory / "roots" / image_id
        try:
            lease = os.open(folder / "lease", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        fcntl.flock(lease, fcntl.LOCK_SH)
        try:
            # Checked after the lock: an eviction renames the folder away while it holds it.
            config = ImageConfig.from_json(json.loads((folder / "image.json").read_text())["config"])
            os.utime(folder / "lease")  # the least recently used roots are evicted first
        except (OSError, ValueError, KeyError):
            os.close(lease)
            return None
        return ImageRoot(rootfs=folder / "rootfs", config=config, made=made, _lease=lease)

    def _make(self, source: ImageSource, key: str, *, refresh: bool) -> str:
        engine = ImageEngine(find_engine(self.engine))
        if source.docker_image:
            image_id = engine.fetch(source.docker_image, task=source.task, base=source.context.parent)
        else:
            if not source.dockerfile.is_file():
                raise ImageError(f"{source.task}: no environment/Dockerfile and no docker_image in task.toml")
            image_id = engine.build(
                source.context, source.dockerfile, tag=f"{IMAGE_TAG_PREFIX}:{key}", task=source.task, no_cache=refresh
            )
        if (self.directory / "roots" / image_id / "image.json").is_file() and not refresh:
            return image_id
        config = engine.inspect(image_id, task=source.task)
        host = host_architecture()
        if config.architecture and config.architecture != host:
            raise ImageError(
                f"{source.task}: its image is for {config.architecture} and this host runs {host}; build it "
                f"for {host} (or pull that platform's variant)"
            )
        partial = self.directory / "partial" / f"{image_id[:32]}-{uuid.uuid4().hex[:8]}"
        (partial / "rootfs").mkdir(parents=True)
        try:
            with _locked(partial / "building.lock"):
                engine.export_root(image_id, partial / "rootfs", task=source.task)
                _write_json(
                    partial / "image.json",
                    {
                        "config": config.to_json(),
                        "size_bytes": _disk_usage(partial / "rootfs"),
                        "source": _describe(source),
                    },
                )
                (partial / "lease").touch()
                target = self.directory / "roots" / image_id
                if target.exists():  # refresh of an unchanged image, or a twin source made it
                    self._remove_root(image_id, wait=True)
                partial.rename(target)
        finally:
            if partial.exists():
                remove_tree(partial)
        return image_id

    # ------------------------------------------------------------------ size

    def entries(self) -> list[CacheEntry]:
        found = []
        for folder in sorted((self.directory / "roots").iterdir()):
            try:
                data = json.loads((folder / "image.json").read_text())
                last_used = (folder / "lease").stat().st_mtime
            except (OSError, ValueError):
                continue
            found.append(
                CacheEntry(
                    image_id=folder.name,
                    size_bytes=int(data.get("size_bytes", 0)),
                    last_used=last_used,
                    source=str(data.get("source", "")),
                    in_use=_held(folder / "lease"),
                )
            )
        return found

    def evict(self, *, keep: set[str] = frozenset(), max_bytes: int | None = None) -> list[CacheEntry]:
        """Remove the least recently used roots no sandbox holds until the cache fits
        `max_bytes` (default: its bound); the unpacks of crashed builds go too. The removed."""
        self._remove_stale_partials()
        bound = self.max_bytes if max_bytes is None else max_bytes
        if bound is None:
            return []
        entries = sorted(self.entries(), key=lambda e: e.last_used)
        total = sum(e.size_bytes for e in entries)
        removed = []
        for entry in entries:
            if total <= bound:
                break
            if entry.image_id in keep or not self._remove_root(entry.image_id, wait=False):
                continue
            total -= entry.size_bytes
            removed.append(entry)
        self._forget_missing_keys()
        return removed

    def _remove_root(self, image_id: str, *, wait: bool) -> bool:
        """Move a root out of roots/ (atomically, holding its lease exclusively) and delete it.
        False where a sandbox holds it and `wait` is off."""
        folder = self.directory / "roots" / image_id
        try:
            lease = os.open(folder / "lease", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            lease = None
        try:
            if lease is not None:
                try:
                    fcntl.flock(lease, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                except BlockingIOError:
                    return False
            doomed = self.directory / "partial" / f"evicted-{image_id[:32]}-{uuid.uuid4().hex[:8]}"
            try:
                folder.rename(doomed)
            except FileNotFoundError:
                return False
        finally:
            if lease is not None:
                os.close(lease)
        remove_tree(doomed)
        return True

    def _remove_stale_partials(self) -> None:
        for folder in (self.directory / "partial").iterdir():
            lock = folder / "building.lock"
            if lock.exists() and _held(lock):
                continue  # a build in progress
            remove_tree(folder)

    def _forget_missing_keys(self) -> None:
        for key in (self.directory / "keys").glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                image_id = json.loads(key.read_text())["image_id"]
                if not (self.directory / "roots" / image_id / "image.json").is_file():
                    key.unlink()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _held(path: Path) -> bool:
    """Whether another open file holds a lock on `path` (shared leases, or a build's lock)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _write_json(path: Path, data: dict[str, object]) -> None:
    scratch = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    scratch.write_text(json.dumps(data, indent=2) + "\n")
    scratch.rename(path)


def _disk_usage(root: Path) -> int:
    """Bytes `root` takes on disk (each hard-linked file once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            with contextlib.suppress(OSError):
                info = os.lstat(os.path.join(directory, name))
                if (info.st_dev, info.st_ino) not in seen:
                    seen.add((info.st_dev, info.st_ino))
                    total += info.st_blocks * 512
    return total


def _describe(source: ImageSource) -> str:
    return f"{source.task} ({source.docker_image})" if source.docker_image else source.task
