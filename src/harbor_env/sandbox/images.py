"""`python -m harbor_env.sandbox.images`: the local sandbox's image cache from the command line.

    build DIR...   make the image root of every task under DIR (a task folder, or a dataset
                   folder of them) before training, so no episode waits for a build
    list           the cached roots: size, last use, whether a sandbox holds one now
    prune          remove the least recently used roots no sandbox holds, down to --max-gb

Every command takes --cache (default: $HARBOR_ENV_IMAGE_CACHE, else ~/.cache/harbor-env/images),
the folder the sandboxes' `image_cache` option names.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harbor_env.sandbox.config import LocalSandboxConfig
from harbor_env.sandbox.image_cache import ImageCache, ImageSource, default_cache_dir
from harbor_env.sandbox.image_engine import ImageError
from harbor_env.sandbox.task_info import read_task_toml

GB = 1024**3


def task_dirs(folders: list[Path]) -> list[Path]:
    """The task folders (holding task.toml) given, or found below the folders given."""
    found: list[Path] = []
    for folder in folders:
        if not folder.is_dir():
            raise SystemExit(f"images: {folder} is not a folder")
        tasks = [folder] if (folder / "task.toml").is_file() else sorted(p.parent for p in folder.rglob("task.toml"))
        if not tasks:
            raise SystemExit(f"images: no task folder (with a task.toml) in {folder}")
        found += tasks
    return list(dict.fromkeys(found))


def image_source(task_dir: Path) -> ImageSource:
    environment = read_task_toml(task_dir).get("environment")
    docker_image = environment.get("docker_image") if isinstance(environment, dict) else None
    return ImageSource.for_task(task_dir, docker_image)


def build(cache: ImageCache, folders: list[Path], *, refresh: bool) -> int:
    tasks = task_dirs(folders)
    failures: list[str] = []
    made = found = 0
    started = time.monotonic()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=None, transient=False) as progress:
        bar = progress.add_task("images", total=len(tasks))
        for task_dir in tasks:
            progress.update(bar, description=task_dir.name)
            try:
                root = cache.root_for(image_source(task_dir), refresh=refresh)
            except ImageError as exc:
                failures.append(str(exc))
                progress.console.print(f"[red]failed[/red] {exc}")
            else:
                root.release()
                made += root.made
                found += not root.made
            progress.advance(bar)
    print(
        f"{len(tasks)} tasks: {made} built, {found} already cached, {len(failures)} failed "
        f"in {time.monotonic() - started:.1f} s; cache {cache.directory}"
    )
    return 1 if failures else 0


def list_roots(cache: ImageCache) -> int:
    entries = sorted(cache.entries(), key=lambda e: e.last_used, reverse=True)
    for entry in entries:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.last_used))
        state = "in use" if entry.in_use else ""
        print(f"{entry.image_id[:12]}  {entry.size_bytes / GB:6.2f} GB  {used}  {state:6}  {entry.source}")
    total = sum(e.size_bytes for e in entries)
    print(f"{len(entries)} image roots, {total / GB:.2f} GB in {cache.directory}")
    return 0


def prune(cache: ImageCache, max_gb: float) -> int:
    removed = cache.evict(max_bytes=int(max_gb * GB))
    for entry in removed:
        print(f"removed {entry.image_id[:12]} ({entry.size_bytes / GB:.2f} GB) {entry.source}")
    left = sum(e.size_bytes for e in cache.entries())
    print(f"{len(removed)} removed; {left / GB:.2f} GB left")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harbor_env.sandbox.images", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=None, help="the image cache folder")
    tool_default = LocalSandboxConfig.model_fields["image_tool"].default
    parser.add_argument("--tool", choices=["auto", "podman", "docker"], default=tool_default)
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="make the image root of every task under the folders")
    build_parser.add_argument("folders", nargs="+", type=Path)
    build_parser.add_argument("--refresh", action="store_true", help="build again, without the tool's layer cache")
    commands.add_parser("list", help="the cached image roots")
    prune_parser = commands.add_parser("prune", help="remove least recently used roots no sandbox holds")
    prune_parser.add_argument(
        "--max-gb", type=float, default=0.0, help="keep at most this much (default 0: remove all unused)"
    )
    args = parser.parse_args(argv)
    max_gb = LocalSandboxConfig.model_fields["image_cache_gb"].default
    cache = ImageCache(args.cache or default_cache_dir(), max_bytes=int(max_gb * GB), engine=args.tool)
    if args.command == "build":
        return build(cache, args.folders, refresh=args.refresh)
    if args.command == "list":
        return list_roots(cache)
    return prune(cache, args.max_gb)


if __name__ == "__main__":
    sys.exit(main())
