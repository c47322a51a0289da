"""`python -m src.train`: dry runs of the shipped configs, each prerequisite failure, and --eval."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from harbor.models.environment_type import EnvironmentType
from harbor.models.job.config import JobConfig
from harbor.models.job.result import JobResult
from harbor.viewer.scanner import JobScanner

from harbor_env.launcher import cli
from harbor_env.testing.cli_runs import config_with, eval_argv, local_source, run_cli
from harbor_env.testing.inference import FakeInferenceServer
from harbor_env.testing.policies import ScriptedPolicy, run_script, script_then_finish
from harbor_env.testing.tasks import HOST_ROOT_TASKS, LONG_TASKS, REPO, SAMPLE_TASKS, write_task
from harbor_env.testing.tokenizer import build_test_tokenizer

CONFIGS = sorted((REPO / "configs").glob("*.toml"))


@pytest.fixture(autouse=True)
def no_docker_no_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """The conditions of this machine, made explicit: no Docker daemon, no GPUs."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_dry_run_of_every_shipped_config(config: Path, capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    if "podman" in config.name and not hasattr(EnvironmentType, "PODMAN"):
        pytest.skip("Harbor's podman environment came in 0.24 (the pinned stack has 0.21)")
    code, out, err = run_cli(capsys, "--config", config, "--dry-run", "--prime-rl", tmp_path / "no-prime-rl")
    assert code == 0, err
    assert "dry run: nothing is started" in out
    assert "model        Qwen/Qwen3-8B, LoRA rank 16 alpha 32" in out
    # Configs on the local sandbox leave out the sample tasks that need their image.
    local = 'type = "local"' in config.read_text()
    if 'path = "datasets/long_tasks"' in config.read_text():  # harbor_cpu_summarize.toml
        expected = len([p for p in LONG_TASKS.iterdir() if (p / "task.toml").is_file()])
        assert f"{expected} tasks from datasets/long_tasks" in out
    else:
        expected = len(HOST_ROOT_TASKS) if local else len(list(SAMPLE_TASKS.iterdir()))
        assert f"{expected} tasks from datasets/harbor_tasks" in out
    assert "inference server (vLLM" in out and "trainer (torchrun" in out and "env server" in out
    assert "not validated: the rest of the config against prime-rl's schema" in out
    assert "prime-rl checkout missing" in err  # a host problem: reported, not fatal in a dry run
    assert "WANDB_API_KEY is not set" in out and os.environ["WANDB_MODE"] == "offline"


def test_prime_rl_checkout_states(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    config = REPO / "configs" / "harbor_eval.toml"
    checkout = tmp_path / "prime-rl"
    checkout.mkdir()
    code, _, err = run_cli(capsys, "--config", config, "--prime-rl", checkout)
    assert code == 2 and "prime-rl checkout missing" in err and "git submodule update --init prime-rl" in err
    (checkout / "pyproject.toml").write_text("[project]\nname = 'prime-rl'\n")
    _, _, err = run_cli(capsys, "--config", config, "--prime-rl", checkout)
    assert "prime-rl's own submodules are not initialised" in err and "scripts/setup-prime-rl.sh" in err
    (checkout / "deps" / "verifiers").mkdir(parents=True)
    (checkout / "deps" / "verifiers" / "pyproject.toml").write_text("")
    _, _, err = run_cli(capsys, "--config", config, "--prime-rl", checkout)
    assert "prime-rl's environment is not installed" in err
    bin_dir = checkout / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    _, _, err = run_cli(capsys, "--config", config, "--prime-rl", checkout)
    assert "prime-rl's environment has no `rl` command" in err
    # An `rl` that is harbor-env's launcher (an old harbor-env shipped one) would run itself.
    (bin_dir / "rl").write_text("#!/bin/sh\nexec python -c 'from harbor_env.launcher.cli import rl_main; rl_main()'\n")
    _, _, err = run_cli(capsys, "--config", config, "--prime-rl", checkout)
    assert "is harbor-env's launcher, not prime-rl's `rl`" in err and "--reinstall-package prime-rl" in err
    (bin_dir / "rl").write_text('#!/bin/sh\nexec python -m prime_rl.entrypoints.rl "$@"\n')
    _, _, err = run_cli(capsys, "--config", config, "--prime-rl", checkout)
    assert "could not run prime-rl's Python" in err  # no python in that environment
    # prime-rl's Python, here this test's own: the plugin and the local sandbox load there.
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (bin_dir / "python").chmod(0o755)
    code, _, err = run_cli(capsys, "--config", config, "--prime-rl", checkout)
    assert code == 2 and "prime-rl" not in err.split("fix:")[0]  # only the GPU problem is left
    assert "the config needs 2 GPUs" in err


def test_too_few_gpus(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    code, _, err = run_cli(capsys, "--config", REPO / "configs" / "harbor_eval.toml")
    assert code == 2
    assert "the config needs 2 GPUs (1 inference + 1 trainer, [deployment]) but 1 are visible" in err


def test_docker_unreachable_with_docker_environment(capsys: pytest.CaptureFixture) -> None:
    code, _, err = run_cli(capsys, "--config", REPO / "configs" / "harbor_8b.toml")
    assert code == 2
    assert "Docker daemon unreachable" in err and "source(s) harbor use environment type docker" in err
    assert "set env.agent.harness.environment.type to 'local'" in err
    # The local sandbox needs no daemon: no Docker problem for it.
    _, _, err = run_cli(capsys, "--config", REPO / "configs" / "harbor_eval.toml")
    assert "Docker" not in err


def test_empty_or_invalid_task_folders(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(capsys, "--config", config_with(tmp_path, local_source(empty)), "--dry-run")
    assert code == 2 and f"no tasks in {empty}" in err
    tasks = tmp_path / "tasks"
    (write_task(tasks, "broken") / "instruction.md").unlink()
    code, _, err = run_cli(capsys, "--config", config_with(tmp_path, local_source(tasks)), "--dry-run")
    assert code == 2 and f"{tasks / 'broken'}: instruction.md is missing" in err


def test_unknown_keys_in_the_environment_section(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    source = local_source(SAMPLE_TASKS, "[orchestrator.train.source.env.agent.harness.agent]\nmax_turn = 3\n")
    code, _, err = run_cli(capsys, "--config", config_with(tmp_path, source), "--dry-run")
    assert code == 2
    assert "unknown key `max_turn` in [orchestrator.train.source[harbor].env.agent.harness.agent]" in err
    assert "use one of: " in err and "max_turns" in err
    typo = local_source(SAMPLE_TASKS).replace("path =", "paht =")
    _, _, err = run_cli(capsys, "--config", config_with(tmp_path, typo, "typo.toml"), "--dry-run")
    assert "unknown key `paht` in [orchestrator.train.source[harbor].env.taskset]" in err and "path" in err


def test_command_line_overrides_reach_the_checks(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    config = config_with(tmp_path, local_source(SAMPLE_TASKS))
    code, out, _ = run_cli(
        capsys, "--config", config, "--dry-run", "--", "--deployment.num-infer-gpus", "3", "--max-steps=9"
    )
    assert code == 0
    assert "3 inference + 1 trainer" in out and "max_steps 9" in out and "--max-steps=9" in out


def test_dotenv_is_loaded_and_wins_nothing_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    (tmp_path / ".env").write_text("WANDB_API_KEY=from-dotenv\nHF_TOKEN=hf-from-dotenv\n")
    monkeypatch.setenv("HF_TOKEN", "hf-from-environment")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    cli._load_dotenv(tmp_path)
    assert os.environ["WANDB_API_KEY"] == "from-dotenv" and os.environ["HF_TOKEN"] == "hf-from-environment"
    assert "WANDB_MODE" not in os.environ and "offline" not in capsys.readouterr().out
    monkeypatch.delenv("WANDB_API_KEY")


def test_eval_end_to_end_against_a_chat_server(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    """--eval: real Terminus-2 episodes against an OpenAI-compatible chat server, local sandbox."""
    solve = (SAMPLE_TASKS / "repair-config" / "solution" / "solve.sh").read_text()
    policy = ScriptedPolicy({"Repair the service configuration": script_then_finish(run_script(solve), duration=3)})
    config = config_with(tmp_path, local_source(SAMPLE_TASKS, include=["repair-config", "git-history"]))
    tokenizer = build_test_tokenizer(tmp_path / "tokenizer")
    with FakeInferenceServer(tokenizer, policy) as server:
        code, out, err = run_cli(
            capsys, *eval_argv(config, server, tmp_path / "jobs", "job-1", "test-model", "--concurrency", "2")
        )
        assert server.chat_requests and all(r["model"] == "test-model" for r in server.chat_requests)
    assert code == 0, err
    job = tmp_path / "jobs" / "job-1"
    rows = {row["task"]: row for row in json.loads((job / "results.json").read_text())}
    assert rows["repair-config"]["reward"] == 1.0 and rows["git-history"]["reward"] == 0.0
    assert rows["repair-config"]["turns"] == 3 and rows["repair-config"]["failure"] == ""
    assert "| repair-config | 1.0 | 3 |" in (job / "results.md").read_text() and "| repair-config | 1.0 |" in out
    # Harbor's job layout: `harbor view` reads it.
    JobConfig.model_validate_json((job / "config.json").read_text())
    result = JobResult.model_validate_json((job / "result.json").read_text())
    assert result.n_total_trials == 2
    scanner = JobScanner(tmp_path / "jobs")
    assert scanner.list_jobs() == ["job-1"] and len(scanner.list_trials("job-1")) == 2


def test_rl_command_takes_prime_rl_arguments(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """`uv run rl @ FILE [overrides] [--dry-run]`, as prime-rl's own `rl` is called."""
    monkeypatch.setattr(
        "sys.argv", ["rl", "@", str(REPO / "configs" / "harbor_eval.toml"), "--max-steps", "7", "--dry-run"]
    )
    assert cli.rl_main() == 0
    out = capsys.readouterr().out
    assert "max_steps 7" in out and "--max-steps 7" in out and "not validated" in out
    monkeypatch.setattr("sys.argv", ["rl", "configs/harbor_eval.toml"])
    assert cli.rl_main() == 2
    assert "usage: uv run rl @ configs/harbor_8b.toml" in capsys.readouterr().err


def test_smoke_run_config(tmp_path: Path) -> None:
    from harbor_env.launcher.run_config import RunConfig

    run = RunConfig.load(REPO / "configs" / "harbor_eval.toml")
    smoke = RunConfig.load(cli._smoke_config(run, tmp_path))
    assert smoke.get("max_steps") == cli.SMOKE_STEPS
    assert [s.env["taskset"]["limit"] for s in smoke.harbor_sources()] == [cli.SMOKE_TASKS] * 2
    from harbor_env.launcher.preflight import check_source

    assert [check_source(s)[0].tasks for s in smoke.harbor_sources()] == [cli.SMOKE_TASKS] * 2


def test_layered_configs_merge_as_prime_rl_layers_them(
    capsys: pytest.CaptureFixture, tmp_path: Path, monkeypatch
) -> None:
    """`rl @ a.toml @ b.toml`: b's tables merge into a's; the checks see the merged run."""
    base = config_with(tmp_path, local_source(SAMPLE_TASKS, include=["csv-to-json"]))
    (tmp_path / "more.toml").write_text("max_steps = 11\n[deployment]\nnum_infer_gpus = 2\n")
    monkeypatch.setattr("sys.argv", ["rl", "@", str(base), "@", str(tmp_path / "more.toml"), "--dry-run"])
    assert cli.rl_main() == 0
    out = capsys.readouterr().out
    assert "max_steps 11" in out and "2 inference + 1 trainer" in out and "1 tasks from" in out
    assert f"@ {base} @ {tmp_path / 'more.toml'}" in out  # both files go to prime-rl, in order


def test_the_launcher_refuses_to_run_inside_its_own_handover(capsys: pytest.CaptureFixture, monkeypatch) -> None:
    """If a harbor-env command ever stood in for prime-rl's, the handover would start itself again."""
    monkeypatch.setenv("HARBOR_ENV_HANDOVER", "1")
    code, _, err = run_cli(capsys, "--config", REPO / "configs" / "harbor_eval.toml", "--dry-run")
    assert code == 2 and "started by its own handover to prime-rl" in err and "--reinstall-package prime-rl" in err
