"""Registry datasets: a local registry file pointing at a git repository made here (`file://`),
downloaded through Harbor's own registry and task clients into the shared cache."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from verifiers.v1.utils.loaders import load_taskset, resolve_env_config

from harbor_env.errors import DatasetUnavailableError
from harbor_env.taskset import HarborTaskset
from harbor_env.testing.tasks import write_task

NAMES = ["alpha", "beta", "gamma"]


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def registry(tmp_path: Path) -> tuple[Path, Path, str]:
    """A git repository holding three tasks, and a registry file naming them at its commit."""
    repo = tmp_path / "tasks-repo"
    (repo / "tasks").mkdir(parents=True)
    for name in NAMES:
        write_task(repo / "tasks", name)
        (repo / "tasks" / name / "instruction.md").write_text(f"Task {name}.\n")
    git("init", "-q", "-b", "main", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x", cwd=repo)
    git("add", ".", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "tasks", cwd=repo)
    git("config", "uploadpack.allowAnySHA1InWant", "true", cwd=repo)  # Harbor fetches the pinned commit
    commit = git("rev-parse", "HEAD", cwd=repo)
    tasks = [{"name": n, "git_url": f"file://{repo}", "git_commit_id": commit, "path": f"tasks/{n}"} for n in NAMES]
    registry_file = tmp_path / "registry.json"
    registry_file.write_text(json.dumps([{"name": "tiny", "version": "1.0", "description": "test", "tasks": tasks}]))
    return repo, registry_file, commit


def load(registry_file: Path, cache: Path, **taskset) -> HarborTaskset:
    config = resolve_env_config(
        {
            "taskset": {
                "id": "harbor-env",
                "dataset": "tiny@1.0",
                "registry_path": str(registry_file),
                "cache_dir": str(cache),
                **taskset,
            }
        }
    ).taskset
    taskset = load_taskset(config)
    taskset.rows = list(taskset)
    return taskset


def test_download_once_then_load_from_the_cache(registry, tmp_path: Path) -> None:
    repo, registry_file, commit = registry
    cache = tmp_path / "cache"
    first = load(registry_file, cache)
    assert [t.data.name for t in first.rows] == NAMES
    assert first.summary.fetched == 3 and first.summary.tasks == 3
    for task in first.rows:
        assert Path(task.data.task_dir).is_relative_to(cache)
        assert (Path(task.data.task_dir) / "instruction.md").read_text() == f"Task {task.data.name}.\n"
        assert task.data.source == "registry:tiny@1.0"
        assert task.data.origin.startswith(f"file://{repo}@{commit}:tasks/{task.data.name}")
    # The repository is gone: the second load must not need it.
    repo.rename(tmp_path / "moved")
    second = load(registry_file, cache)
    assert second.summary.fetched == 0
    assert [t.data.task_dir for t in second.rows] == [t.data.task_dir for t in first.rows]


def test_an_unpinned_task_names_the_commit_it_was_downloaded_at(registry, tmp_path: Path) -> None:
    repo, registry_file, commit = registry
    entries = json.loads(registry_file.read_text())
    for task in entries[0]["tasks"]:
        del task["git_commit_id"]
    registry_file.write_text(json.dumps(entries))
    first = load(registry_file, tmp_path / "cache", include=["alpha"])
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "later", cwd=repo)
    assert first.rows[0].data.origin.startswith(f"file://{repo}@{commit}:tasks/alpha (")
    assert load(registry_file, tmp_path / "cache", include=["alpha"]).rows[0].data.origin == first.rows[0].data.origin


def test_a_subset_downloads_only_its_tasks(registry, tmp_path: Path) -> None:
    _, registry_file, _ = registry
    cache = tmp_path / "cache"
    taskset = load(registry_file, cache, include=["b*", "g*"], exclude=["gamma"])
    assert [t.data.name for t in taskset.rows] == ["beta"]
    assert sorted(p.name for p in cache.rglob("instruction.md") for p in [p.parent]) == ["beta"]
    limited = load(registry_file, cache, limit=2)
    assert [t.data.name for t in limited.rows] == ["alpha", "beta"] and limited.summary.fetched == 1


def test_offline_without_cache_is_one_line_error(registry, tmp_path: Path) -> None:
    repo, registry_file, _ = registry
    repo.rename(tmp_path / "unreachable")  # the git URL no longer answers, as offline
    with pytest.raises(DatasetUnavailableError) as error:
        load(registry_file, tmp_path / "cache")
    message = str(error.value)
    assert "\n" not in message and "tiny@1.0" in message and str(tmp_path / "cache") in message
    with pytest.raises(DatasetUnavailableError) as error:  # the registry itself unreachable
        load(registry_file, tmp_path / "cache", registry_path=None, registry_url="http://127.0.0.1:9/registry.json")
    assert "\n" not in str(error.value) and "127.0.0.1:9" in str(error.value)


LOADER = """
import json, sys
from harbor_env.datasets.cache import Selection
from harbor_env.datasets.registry import load_registry_tasks
args = json.loads(sys.argv[1])
tasks = load_registry_tasks(args["dataset"], registry_path=args["registry_path"], selection=Selection(cache_dir=args["cache"]))
print(json.dumps({"rows": [str(t.task_dir) for t in tasks], "fetched": sum(not t.cached for t in tasks)}))
"""


def test_processes_starting_together_download_once(registry, tmp_path: Path) -> None:
    _, registry_file, _ = registry
    cache = tmp_path / "cache"
    load = {"dataset": "tiny@1.0", "registry_path": str(registry_file), "cache": str(cache)}
    procs = [
        subprocess.Popen([sys.executable, "-c", LOADER, json.dumps(load)], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(r["fetched"] for r in results) == [0, 0, 3]  # one process downloaded, the others waited
    assert all(r["rows"] == results[0]["rows"] for r in results)
    assert len(list(cache.rglob("task.toml"))) == 3
    manifest = json.loads(next(cache.rglob("manifest.json")).read_text())
    assert [t["name"] for t in manifest["tasks"]] == NAMES


def test_dry_run_and_eval_of_a_registry_source(registry, tmp_path: Path, capsys, monkeypatch) -> None:
    """From a config file: the dry run says where the tasks come from and whether they were
    cached; --eval runs them."""
    from harbor_env.testing.cli_runs import config_with, eval_argv, run_cli
    from harbor_env.testing.inference import FakeInferenceServer
    from harbor_env.testing.policies import ScriptedPolicy
    from harbor_env.testing.tokenizer import build_test_tokenizer

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    _, registry_file, _ = registry
    cache = tmp_path / "cache"
    config = config_with(
        tmp_path,
        (
            f'[orchestrator.train.source.env.taskset]\nid = "harbor-env"\ndataset = "tiny@1.0"\n'
            f'registry_path = "{registry_file}"\ncache_dir = "{cache}"\nlimit = 2\n'
            '[orchestrator.train.source.env.agent.harness]\nid = "harbor-env"\n'
            '[orchestrator.train.source.env.agent.harness.environment]\ntype = "local"\n'
        ),
    )
    code, out, err = run_cli(capsys, "--config", config, "--dry-run")
    folder = next(p for p in (cache / "registry").iterdir() if p.is_dir())
    assert f"2 tasks from registry tiny@1.0 ({registry_file}), in {folder}: 2 fetched now, 0 cached" in out, out + err
    code, out, err = run_cli(capsys, "--config", config, "--dry-run")
    assert f"2 tasks from registry tiny@1.0 ({registry_file}), in {folder}: all cached" in out
    with FakeInferenceServer(build_test_tokenizer(tmp_path / "tokenizer"), ScriptedPolicy({})) as server:
        code, out, err = run_cli(capsys, *eval_argv(config, server, tmp_path / "jobs", "j"))
    assert code == 0, err
    rows = json.loads((tmp_path / "jobs" / "j" / "results.json").read_text())
    assert sorted((r["task"], r["reward"]) for r in rows) == [("alpha", 1.0), ("beta", 1.0)]
