"""Running the launcher's command line in tests: its output, `--eval` arguments, small configs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harbor_env.launcher import cli
from harbor_env.testing.inference import FakeInferenceServer


def run_cli(capsys: Any, *argv: str) -> tuple[int, str, str]:
    """The CLI's exit code and what it printed (captured by pytest's `capsys`)."""
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def eval_argv(
    config: Path, server: FakeInferenceServer, jobs_dir: Path, job: str, model: str = "m", *extra: str
) -> list:
    """`--eval` of `config` against the fake model server, into `jobs_dir/job`."""
    return [
        "--config",
        config,
        "--eval",
        "--base-url",
        server.base_url,
        "--model",
        model,
        "--jobs-dir",
        jobs_dir,
        "--job-name",
        job,
        *extra,
    ]


def config_with(tmp: Path, source_env: str, name: str = "run.toml") -> Path:
    """A minimal prime-rl config with one HarborEnvironment train source."""
    path = tmp / name
    path.write_text(
        'max_steps = 2\n[model]\nname = "Qwen/Qwen3-0.6B"\n[orchestrator]\nbatch_size = 8\ngroup_size = 4\n'
        '[[orchestrator.train.source]]\nname = "harbor"\n' + source_env
    )
    return path


def local_source(tasks: Path, extra: str = "", include: list[str] | None = None) -> str:
    """The env section of a train source on the local task folder `tasks`, in the local sandbox."""
    return (
        f'[orchestrator.train.source.env.taskset]\nid = "harbor-env"\npath = "{tasks}"\n'
        f"include = {json.dumps(include or [])}\n"
        '[orchestrator.train.source.env.agent.harness]\nid = "harbor-env"\n'
        '[orchestrator.train.source.env.agent.harness.environment]\ntype = "local"\n' + extra
    )
