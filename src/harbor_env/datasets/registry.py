"""Harbor registry datasets (`terminal-bench@2.0`, Hub ids `org/name@ref`) as task folders.

Downloaded with Harbor's own registry and task clients into a cache folder shared by every
process on the node (the orchestrator and each env server load the taskset): the first process
to take the cache's file lock downloads, the others wait and then read what it wrote. A
manifest records which task went to which folder, so a later load needs no network at all.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import TypeAdapter

from harbor_env.datasets.cache import (
    Selection,
    SourcedTask,
    cache_root,
    locked,
    one_line,
    run_sync,
    write_json_atomically,
)
from harbor_env.errors import DatasetUnavailableError


def _task_id_adapter() -> TypeAdapter:
    """Harbor's task id models (git, local, Hub package), as its registry clients return them."""
    from harbor.models.task.id import GitTaskId, LocalTaskId, PackageTaskId

    return TypeAdapter(GitTaskId | LocalTaskId | PackageTaskId)


def is_hub_id(dataset: str) -> bool:
    """Harbor's rule: a name with an organisation (`org/name`) is a Hub package dataset."""
    return "/" in dataset.split("@", 1)[0]


def registry_label(registry_url: str | None, registry_path: str | None) -> str:
    if registry_path:
        return str(Path(registry_path).expanduser().resolve())
    return registry_url or "harbor registry"


def cache_dir_for(dataset: str, registry_url: str | None, registry_path: str | None, cache_dir: str | None) -> Path:
    """One cache folder per (registry, dataset id)."""
    key = hashlib.sha256(f"{registry_label(registry_url, registry_path)}\n{dataset}".encode()).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in dataset)
    return cache_root(cache_dir) / "registry" / f"{safe}-{key}"


async def _metadata(dataset: str, registry_url: str | None, registry_path: str | None):
    if is_hub_id(dataset):
        from harbor.registry.client.package import PackageDatasetClient

        name = dataset if "@" in dataset else f"{dataset}@latest"
        return await PackageDatasetClient().get_dataset_metadata(name)
    from harbor.registry.client.factory import RegistryClientFactory

    client = RegistryClientFactory.create(
        registry_url=registry_url, registry_path=Path(registry_path).expanduser() if registry_path else None
    )
    return await client.get_dataset_metadata(dataset)


def load_registry_tasks(
    dataset: str,
    *,
    registry_url: str | None = None,
    registry_path: str | None = None,
    selection: Selection | None = None,
    refresh: bool = False,
) -> list[SourcedTask]:
    """The selected tasks of `dataset`, downloaded into the cache if not there yet."""
    selection = selection or Selection()
    folder = cache_dir_for(dataset, registry_url, registry_path, selection.cache_dir)
    manifest_path = folder / "manifest.json"
    where = registry_label(registry_url, registry_path)
    with locked(folder):
        folder.mkdir(exist_ok=True)
        manifest = None if refresh or not manifest_path.is_file() else json.loads(manifest_path.read_text())
        if manifest is None:
            try:
                metadata = run_sync(_metadata(dataset, registry_url, registry_path))
            except Exception as exc:
                raise DatasetUnavailableError(
                    f"dataset {dataset}: cannot read it from {where} ({one_line(exc)}) and it is not cached in "
                    f"{folder}; check [env.taskset] dataset / registry_url / registry_path, or load it once online"
                ) from None
            adapter = _task_id_adapter()
            manifest = {
                "dataset": dataset,
                "registry": where,
                "version": metadata.version,
                "tasks": [
                    {"name": tid.get_name(), "id": adapter.dump_python(tid, mode="json"), "path": None}
                    for tid in metadata.task_ids
                ],
            }
        entries = {entry["name"]: entry for entry in manifest["tasks"]}
        chosen = selection.pick(list(entries))
        if not chosen:
            raise DatasetUnavailableError(
                f"dataset {dataset}: no task matches include={selection.include or ['*']} exclude={selection.exclude} "
                f"({len(entries)} tasks, e.g. {sorted(entries)[:3]})"
            )
        missing = [n for n in chosen if not entries[n]["path"] or not Path(entries[n]["path"]).is_dir()]
        if missing:
            _download(dataset, where, folder, [entries[n] for n in missing])
            write_json_atomically(manifest_path, manifest)
        elif not manifest_path.is_file():
            write_json_atomically(manifest_path, manifest)
    origin = f"{dataset} from {where}"
    return [
        SourcedTask(
            Path(entries[n]["path"]),
            source=f"registry:{dataset}",
            origin=_origin(entries[n], origin),
            cached=n not in missing,
            cache=folder,
        )
        for n in chosen
    ]


def _download(dataset: str, where: str, folder: Path, entries: list[dict]) -> None:
    """Download `entries` with Harbor's TaskClient into `folder/tasks`; fill in their paths."""
    from harbor.tasks.client import TaskClient

    adapter = _task_id_adapter()
    task_ids = [adapter.validate_python(entry["id"]) for entry in entries]
    try:
        result = run_sync(TaskClient().download_tasks(task_ids=task_ids, output_dir=folder / "tasks"))
    except Exception as exc:
        raise DatasetUnavailableError(
            f"dataset {dataset}: downloading {len(task_ids)} tasks from {where} failed ({one_line(exc)}) and they "
            f"are not cached in {folder}; check the network or the registry's git URLs"
        ) from None
    for entry, downloaded in zip(entries, result.results, strict=True):
        entry["path"] = str(Path(downloaded.path).resolve())
        # The commit an unpinned task was downloaded at: the origin names what the cache holds,
        # not whatever the branch's head is later.
        entry["commit"] = downloaded.resolved_git_commit_id


def _origin(entry: dict, dataset_origin: str) -> str:
    task_id = entry["id"]
    if task_id.get("git_url"):
        commit = entry.get("commit") or task_id.get("git_commit_id") or "unpinned"
        return f"{task_id['git_url']}@{commit}:{task_id['path']} ({dataset_origin})"
    if task_id.get("org"):
        return f"{task_id['org']}/{task_id['name']}@{task_id.get('ref') or 'latest'} ({dataset_origin})"
    return f"{task_id.get('path')} ({dataset_origin})"
