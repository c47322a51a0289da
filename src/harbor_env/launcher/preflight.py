"""Checks that run before anything GPU-heavy starts; each failure names its fix.

Config checks (the HarborEnvironment sections, the task folders) decide whether a config is
valid at all; host checks (GPUs, Docker, and prime-rl's checkout and environment in
`handover.py`) decide whether this machine can run it now. A dry run reports host problems
without failing on them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from harbor_env.launcher.run_config import RunConfig, Source


@dataclass(frozen=True)
class Problem:
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.message}\n    fix: {self.fix}"


@dataclass
class SourcePlan:
    source: Source
    tasks: int
    environment: str
    agent: str
    origin: str = ""
    """Where the tasks come from, how many, whether they were cached (the taskset's summary)."""


def _model_at(env: dict[str, Any], path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config class that holds the key at `path` (for "allowed keys" in messages).

    The taskset and harness tables are narrowed as verifiers narrows them (by their ids)."""
    from verifiers.v1.utils.loaders import env_config_type, harness_config_type, taskset_config_type

    taskset_id = str((env.get("taskset") or {}).get("id", ""))
    harness_id = str(((env.get("agent") or {}).get("harness") or {}).get("id", ""))
    narrowed = {
        ("taskset",): lambda: taskset_config_type(taskset_id),
        ("agent", "harness"): lambda: harness_config_type(harness_id),
    }
    model: type[BaseModel] | None = env_config_type(taskset_id, str(env.get("id") or ""))
    for depth, part in enumerate(path):
        if path[: depth + 1] in narrowed:
            model = narrowed[path[: depth + 1]]()
            continue
        field = model.model_fields.get(str(part)) if model else None
        if field is None:
            return None
        candidates = [field.annotation, *get_args(field.annotation)]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return model


def _describe(error: dict[str, Any], source: Source) -> Problem:
    loc = tuple(error["loc"])
    table = ".".join([source.key, *map(str, loc[:-1])])
    if error["type"] == "extra_forbidden":
        holder = _model_at(source.env, loc[:-1])
        allowed = ", ".join(sorted(holder.model_fields)) if holder else "see docs/environment.md"
        return Problem(f"unknown key `{loc[-1]}` in [{table}]", f"use one of: {allowed}")
    return Problem(f"[{table}] {loc[-1] if loc else ''}: {error['msg']}", "correct the value in the config")


def check_source(source: Source) -> tuple[SourcePlan | None, list[Problem]]:
    """Validate one HarborEnvironment source: its config keys and its task folders."""
    from verifiers.v1.utils.loaders import load_taskset, resolve_env_config

    from harbor_env.errors import DatasetUnavailableError, InvalidTaskError, SweRowError

    try:
        config = resolve_env_config(source.env)
    except ValidationError as exc:
        return None, [_describe(error, source) for error in exc.errors()]
    try:
        taskset = load_taskset(config.taskset)
        tasks = sum(1 for _ in taskset)
    except InvalidTaskError as exc:
        return None, [Problem(f"[{source.key}.taskset] {exc}", "fix the task folder, or set skip_invalid = true")]
    except (DatasetUnavailableError, SweRowError) as exc:
        return None, [
            Problem(f"[{source.key}.taskset] {exc}", "fix the data source named above, or load it once online")
        ]
    harness = config.agent.harness
    environment = harness.environment.import_path or harness.environment.type
    agent = harness.agent.import_path or harness.agent.name
    summary = getattr(taskset, "summary", None)
    return SourcePlan(source, tasks, environment, agent, summary.describe() if summary else f"{tasks} tasks"), []


def visible_gpus() -> int:
    """NVIDIA GPUs this process may use (CUDA_VISIBLE_DEVICES narrows them)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in listing.stdout.splitlines() if line.startswith("GPU "))


def check_gpus(run: RunConfig) -> list[Problem]:
    train, infer = run.gpus
    have = visible_gpus()
    if have < train + infer:
        return [
            Problem(
                f"the config needs {train + infer} GPUs ({infer} inference + {train} trainer, [deployment]) "
                f"but {have} are visible",
                "run on a node with enough NVIDIA GPUs, or lower [deployment] num_train_gpus / num_infer_gpus",
            )
        ]
    return []


def _answer(argv: list[str]) -> tuple[bool, str]:
    """Whether `argv` exits 0 within 20 s, and its last line of output (or of errors)."""
    try:
        probe = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return False, f"`{' '.join(argv)}` did not answer within 20 s"
    except OSError as exc:
        return False, str(exc)
    if probe.returncode != 0:
        return False, (probe.stderr.strip().splitlines() or ["no answer"])[-1]
    return True, probe.stdout.strip()


def docker_reachable() -> tuple[bool, str]:
    if shutil.which("docker") is None:
        return False, "the docker CLI is not installed"
    reachable, detail = _answer(["docker", "info", "--format", "{{.ServerVersion}}"])
    if not reachable:
        return False, f"Docker daemon unreachable ({detail})"
    # Harbor's docker environment runs `docker compose` (Compose v2), not `docker-compose`.
    has_compose, _ = _answer(["docker", "compose", "version"])
    if not has_compose:
        return False, "`docker compose` (Compose v2) is not installed; Harbor's docker environment runs it"
    return True, detail


def podman_ready() -> tuple[bool, str]:
    if shutil.which("podman") is None:
        return False, "podman is not installed"
    # Harbor prefers `podman compose`, else podman-compose >= 1.x (Debian 12's 1.0.3 lacks --in-pod).
    has_plugin, _ = _answer(["podman", "compose", "version"])
    if not has_plugin and shutil.which("podman-compose") is None:
        return False, "no compose frontend for podman (`podman compose`, or `pip install podman-compose>=1.1`)"
    working, detail = _answer(["podman", "info", "--format", "{{.Version.Version}}"])
    return working, detail if working else f"`podman info` failed ({detail})"


def check_container_engines(plans: list[SourcePlan]) -> list[Problem]:
    problems = []
    for engine, probe, fix in (
        ("docker", docker_reachable, "start Docker (e.g. `sudo systemctl start docker`) with Compose v2"),
        ("podman", podman_ready, "install podman and podman-compose (docs/containers.md)"),
    ):
        users = [p.source.name for p in plans if p.environment == engine]
        if not users:
            continue
        ready, detail = probe()
        if not ready:
            problems.append(
                Problem(
                    f"{detail}, and source(s) {', '.join(users)} use environment type {engine}",
                    f"{fix}, or set env.agent.harness.environment.type to 'local' (no container engine) "
                    "or a cloud sandbox ('modal', 'daytona', 'e2b')",
                )
            )
    return problems
