"""The handover to prime-rl, the way users run it.

`uv run rl @ FILE`, `python -m src.train` (train, `--test`, `--dry-run`) must start prime-rl's
own `rl` exactly once, from the project root, on prime-rl's own packages, with `harbor_env`
importable in every process it starts. Checked against a prime-rl-shaped stand-in
(tests/fixtures/prime-rl-stub) placed at `prime-rl/` in a copy of this project: real uv, real
process boundaries, and prime-rl's pinned verifiers (a60a606, version 0.3.1.dev62) from a path
source, as a real prime-rl checkout installs it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from harbor_env.launcher import cli
from harbor_env.launcher.handover import PrimeRL
from harbor_env.testing.tasks import HOST_ROOT_TASKS, REPO

PINNED_VERIFIERS_VERSION = "0.3.1.dev62"
UPSTREAM_VERIFIERS = REPO.parent / "shared" / "upstream" / "verifiers-a60a606.tar.gz"
SUBMODULE_VERIFIERS = REPO / "prime-rl" / "deps" / "verifiers"
RETURN_WITHIN_SEC = 300  # a handover that runs itself never returns
N_TASKS = len(HOST_ROOT_TASKS)  # harbor_eval.toml (local sandbox) leaves out those that need their image
PRIME_RL_COMMANDS = {"rl", "sft", "inference", "trainer", "orchestrator", "evals", "env-server"}

pytestmark = [
    pytest.mark.skipif(
        Path(sys.prefix).resolve() != (REPO / ".venv").resolve(),
        reason="runs the copy's own `uv run` (the lock's stack) whatever stack runs pytest: the lock-stack suite runs it",
    ),
    pytest.mark.skipif(
        not (UPSTREAM_VERIFIERS.is_file() or (SUBMODULE_VERIFIERS / "pyproject.toml").is_file()),
        reason="prime-rl's pinned verifiers source is not here (prime-rl/deps/verifiers or ../shared/upstream)",
    ),
]


@dataclass(frozen=True)
class Project:
    root: Path  # a copy of this project
    stub: PrimeRL  # the stand-in at root/prime-rl
    uv: str

    def env(self, **extra: str) -> dict[str, str]:
        """A user's shell: no virtual environment active, not inside another `uv run`."""
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_RUN_RECURSION_DEPTH", "PYTHONPATH")}
        ours = str(REPO / ".venv" / "bin")
        env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != ours)
        env["HF_HUB_OFFLINE"] = "1"
        return {**env, **extra}

    def installed(self) -> list[str]:
        return subprocess.run(
            [self.uv, "pip", "freeze", "--python", str(self.stub.python)], capture_output=True, text=True, check=True
        ).stdout.splitlines()


def _copy_project(dest: Path) -> None:
    """The files a clone of this project has (tracked, or new and not ignored)."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file() and not name.startswith("prime-rl/"):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def _place_pinned_verifiers(deps: Path) -> None:
    if (SUBMODULE_VERIFIERS / "pyproject.toml").is_file():
        shutil.copytree(SUBMODULE_VERIFIERS, deps / "verifiers", ignore=shutil.ignore_patterns(".git"))
        return
    with tarfile.open(UPSTREAM_VERIFIERS) as archive:
        archive.extractall(deps, filter="data")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("handover") / "harbor-env"
    _copy_project(root)
    stub = root / "prime-rl"
    shutil.copytree(REPO / "tests" / "fixtures" / "prime-rl-stub", stub)
    _place_pinned_verifiers(stub / "deps")
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv is needed to build the prime-rl stand-in"
    project = Project(root, PrimeRL(stub), uv)
    # prime-rl's own way: `uv sync` in its folder (it has no lock here yet, so it resolves one);
    # the archive has no .git, so verifiers' version is given as a real checkout's git describe.
    sync = project.env(SETUPTOOLS_SCM_PRETEND_VERSION=PINNED_VERIFIERS_VERSION, UV_PYTHON=sys.executable)
    sync.pop("UV_LOCKED", None)
    subprocess.run([uv, "sync", "-q"], cwd=stub, env=sync, check=True, timeout=600)
    subprocess.run([uv, "sync", "-q"], cwd=root, env=project.env(), check=True, timeout=600)
    return project


def run(project: Project, *command: str, **env: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    log = project.root / "outputs" / "stub-log.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    before = project.installed()
    try:
        done = subprocess.run(
            list(command),
            cwd=project.root,
            capture_output=True,
            text=True,
            timeout=RETURN_WITHIN_SEC,
            env=project.env(CUDA_VISIBLE_DEVICES="0,1", PRIME_RL_STUB_LOG=str(log), **env),
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(command)} did not return within {RETURN_WITHIN_SEC} s (does the handover run itself?)")
    assert project.installed() == before, "prime-rl's environment was changed"
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return done, records


def assert_on_prime_rls_stack(project: Project, records: list[dict]) -> None:
    venv = project.stub.venv
    for record in records:
        assert Path(record["prefix"]) == venv, record  # prime-rl's interpreter ...
        assert record["rl_on_path"] == str(venv / "bin" / "rl"), record  # ... and its commands first on PATH
        assert record["verifiers"] == PINNED_VERIFIERS_VERSION, record  # its own verifiers, not a replacement
        assert record["verifiers_file"].startswith(str(project.stub.checkout / "deps" / "verifiers")), record
        assert record.get("harbor_env_file") == str(project.root / "src" / "harbor_env" / "__init__.py"), record
        assert Path(record["cwd"]) == project.root, record


def commands(records: list[dict]) -> list[str]:
    return sorted(record["command"] for record in records)


@pytest.mark.parametrize(
    "command",
    [
        ["uv", "run", "rl", "@", "configs/harbor_eval.toml", "--max-steps", "7"],
        ["uv", "run", "python", "-m", "src.train", "--config", "configs/harbor_eval.toml", "--", "--max-steps", "7"],
    ],
    ids=["uv run rl", "python -m src.train"],
)
def test_training_hands_over_to_prime_rls_rl_once(project: Project, command: list[str]) -> None:
    load_tasks = command[2] == "rl"  # once is enough: the env server loads the tasksets
    done, records = run(project, project.uv, *command[1:], **({"PRIME_RL_STUB_LOAD_TASKS": "1"} if load_tasks else {}))
    assert done.returncode == 0, done.stderr
    assert commands(records) == ["env-server", "orchestrator", "rl"]  # rl once; it started the others by name
    rl = next(r for r in records if r["command"] == "rl")
    assert rl["argv"] == ["@", str(project.root / "configs" / "harbor_eval.toml"), "--max-steps", "7"]
    assert_on_prime_rls_stack(project, records)
    if load_tasks:  # the plugin's tasksets load in the env server, on prime-rl's verifiers
        server = next(r for r in records if r["command"] == "env-server")
        assert server["tasks"] == {"train/harbor": N_TASKS, "eval/harbor-eval": N_TASKS}


def test_smoke_run_hands_over_its_own_config(project: Project) -> None:
    done, records = run(
        project, project.uv, "run", "python", "-m", "src.train", "--config", "configs/harbor_eval.toml", "--test"
    )
    assert done.returncode == 0, done.stderr
    assert commands(records) == ["env-server", "orchestrator", "rl"]
    rl = next(r for r in records if r["command"] == "rl")
    assert rl["argv"] == ["@", str(project.root / "outputs" / "smoke" / "harbor_eval.toml")]
    assert_on_prime_rls_stack(project, records)


def test_dry_run_runs_prime_rls_own_dry_run_once_and_reports_its_verdict(project: Project) -> None:
    done, records = run(project, project.uv, "run", "rl", "@", "configs/harbor_eval.toml", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert commands(records) == ["rl"]  # a dry run starts nothing else
    assert records[0]["argv"] == ["@", str(project.root / "configs" / "harbor_eval.toml"), "--dry-run"]
    assert_on_prime_rls_stack(project, records)
    assert "dry run: nothing is started" in done.stdout and "not validated" not in done.stdout
    assert f"verifiers {PINNED_VERIFIERS_VERSION}, harbor 0.21.0" in done.stdout  # what prime-rl's Python holds
    assert "prime-rl's own dry run accepted the config" in done.stdout


def test_a_rejecting_dry_run_fails_with_prime_rls_verdict(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """In-process (the launcher's imports are paid once), still through prime-rl's real process."""
    log = project.root / "outputs" / "reject-log.jsonl"
    monkeypatch.chdir(project.root)
    for key, value in project.env(
        CUDA_VISIBLE_DEVICES="0,1", PRIME_RL_STUB_LOG=str(log), PRIME_RL_STUB_REJECT="1"
    ).items():
        monkeypatch.setenv(key, value)
    assert cli.main(["--config", "configs/harbor_eval.toml", "--dry-run"]) == 1
    assert "prime-rl's own dry run rejected the config (exit 1)" in capsys.readouterr().err
    assert [json.loads(line)["command"] for line in log.read_text().splitlines()] == ["rl"]


def test_cloud_sdk_extras_are_checked_then_installed_without_touching_prime_rls_packages(project: Project) -> None:
    """A source on a cloud environment needs Harbor's SDK extra in prime-rl's environment."""
    report = project.stub.probe(project.root, ["local", "e2b"])
    [problem] = report.problems
    assert "environment `e2b` cannot be loaded in prime-rl's environment" in problem.message
    assert problem.fix == "bash scripts/setup-prime-rl.sh e2b"
    before = set(project.installed())
    setup = project.env(SETUPTOOLS_SCM_PRETEND_VERSION=PINNED_VERIFIERS_VERSION)
    setup.pop("UV_LOCKED", None)
    done = subprocess.run(
        ["bash", "scripts/setup-prime-rl.sh", "e2b"],
        cwd=project.root,
        env=setup,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    after = set(project.installed())
    assert before <= after and any(line.startswith("e2b==") for line in after - before)  # only additions
    # The script ends with the launcher's own check (`stack_probe --check`), now clean.
    probe = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))
    assert probe["environments"] == {"local": None, "docker": None, "e2b": None} and probe["plugin_error"] is None


def test_installing_harbor_env_into_prime_rls_environment_replaces_nothing(project: Project) -> None:
    """`uv pip install <harbor-env>` into prime-rl's environment (the own-setup path of docs/configs.md)."""
    done = subprocess.run(
        [project.uv, "pip", "install", "--dry-run", "--python", str(project.stub.python), "-e", str(project.root)],
        capture_output=True,
        text=True,
        env=project.env(),
    )
    assert done.returncode == 0, done.stderr
    changes = [
        line.strip() for line in (done.stdout + done.stderr).splitlines() if line.startswith((" + ", " - ", " ~ "))
    ]
    assert changes and all(line.startswith("+ harbor-env") for line in changes), changes


def test_the_package_ships_no_command_named_like_prime_rls() -> None:
    """Installed into prime-rl's environment, a script of the same name would replace prime-rl's."""
    scripts = {
        e.name for e in importlib.metadata.distribution("harbor-env").entry_points if e.group == "console_scripts"
    }
    assert not scripts & PRIME_RL_COMMANDS
    assert shutil.which("rl", path=str(REPO / ".venv" / "bin"))  # this checkout's `rl` comes from rl-command/
