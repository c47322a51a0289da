"""Sandbox lifecycle: start -> first exec -> stop, median and p90 over N runs, local sandbox and Docker.

Each cycle builds a fresh environment on one sample task, as a Harbor trial does: `start`,
one `exec("true")`, for the local sandbox the verifier's isolation as at the end of an episode
(`prepare_verifier`, once per verifier mode: what the defences cost per episode),
`stop(delete=True)`. The first cycle of each backend is a discarded
warm-up (imports, page cache; for Docker, the image build). Docker's row is measured with
Harbor's own `DockerEnvironment` when a Docker daemon is reachable, and says so when not.

Usage: uv run --group bench python bench/lifecycle.py [--quick] [--out bench/results]
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harbor_env.testing.defaults import apply_environment_defaults

apply_environment_defaults()  # before verifiers and Harbor load

import common  # noqa: E402
from harbor.environments.base import BaseEnvironment  # noqa: E402
from harbor.environments.docker.docker import DockerEnvironment  # noqa: E402
from harbor.models.task.task import Task  # noqa: E402
from harbor.models.trial.paths import TrialPaths  # noqa: E402

from harbor_env.sandbox import LocalSandbox  # noqa: E402

DEFAULT_TASK = common.SAMPLE_TASKS / "fix-python-bug"
PHASES = ("start", "first exec", "verifier isolation", "stop", "total")
RUNS, QUICK_RUNS = 50, 10
DOCKER_RUNS, QUICK_DOCKER_RUNS = 20, 5

EnvironmentFactory = Callable[[Task, Path, int], BaseEnvironment]


def _environment_arguments(task: Task, scratch: Path, index: int) -> dict:
    """What every Harbor environment of one cycle is built with, as a Trial would build it."""
    paths = TrialPaths(scratch / f"trial-{index}")
    paths.mkdir()
    return {
        "environment_dir": task.paths.environment_dir,
        "environment_name": task.name,
        "session_id": f"harbor-env-bench-{index}",
        "trial_paths": paths,
        "task_env_config": task.config.environment.model_copy(deep=True),
    }


def local_sandbox(task: Task, scratch: Path, index: int, verifier: str = "fresh") -> BaseEnvironment:
    return LocalSandbox(
        **_environment_arguments(task, scratch, index), sandbox_dir=str(scratch / "sandboxes"), verifier=verifier
    )


def local_sandbox_shared_verifier(task: Task, scratch: Path, index: int) -> BaseEnvironment:
    return local_sandbox(task, scratch, index, verifier="shared")


def docker_environment(task: Task, scratch: Path, index: int) -> BaseEnvironment:
    return DockerEnvironment(**_environment_arguments(task, scratch, index))


async def one_cycle(
    task: Task, scratch: Path, index: int, make: EnvironmentFactory = local_sandbox
) -> dict[str, float]:
    """Seconds each phase of one start -> exec -> stop cycle takes."""
    environment = make(task, scratch, index)
    t0 = time.perf_counter()
    await environment.start(force_build=False)
    try:
        t1 = time.perf_counter()
        result = await environment.exec("true")
        t2 = time.perf_counter()
        if isinstance(environment, LocalSandbox):
            await environment.prepare_verifier()
        t3 = time.perf_counter()
    finally:
        await environment.stop(delete=True)
    t4 = time.perf_counter()
    if result.return_code != 0:
        raise RuntimeError(f"exec('true') failed: {result}")
    return {"start": t1 - t0, "first exec": t2 - t1, "verifier isolation": t3 - t2, "stop": t4 - t3, "total": t4 - t0}


async def cycles(task: Task, runs: int, make: EnvironmentFactory = local_sandbox) -> list[dict[str, float]]:
    """`runs` measured cycles after one warm-up, in a scratch folder that is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="harbor-env-bench-lifecycle-") as tmp:
        scratch = Path(tmp)
        await one_cycle(task, scratch, -1, make)
        results = [await one_cycle(task, scratch, i, make) for i in range(runs)]
        leaked = common.processes_mentioning(str(scratch))
        if leaked:
            raise RuntimeError(f"processes left behind: {sorted(leaked)}")
    return results


def median_p90_ms(values: list[float]) -> tuple[float, float]:
    ms = sorted(v * 1000 for v in values)
    return statistics.median(ms), ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]


def summarize(name: str, values: list[float]) -> str:
    """One markdown row: phase | median ms | p90 ms."""
    median, p90 = median_p90_ms(values)
    return f"| {name} | {median:.1f} | {p90:.1f} |"


def docker_unavailable() -> str | None:
    """Why Docker cannot be measured here (Harbor's own preflight), or None when it can."""
    try:
        DockerEnvironment.preflight()
    except SystemExit as exc:
        return str(exc)
    return None


async def section(out_dir: Path, quick: bool = False) -> str:
    task = Task(DEFAULT_TASK)
    runs, docker_runs = (QUICK_RUNS, QUICK_DOCKER_RUNS) if quick else (RUNS, DOCKER_RUNS)
    measured = {
        "local sandbox": await cycles(task, runs),
        "local sandbox, shared verifier": await cycles(task, runs, local_sandbox_shared_verifier),
    }
    rows = [
        [name, runs, p, *(f"{v:.1f}" for v in median_p90_ms([c[p] for c in measured[name]]))]
        for name in ("local sandbox", "local sandbox, shared verifier")
        for p in PHASES
    ]
    no_docker = docker_unavailable()
    if no_docker is None:
        try:
            measured["docker"] = await cycles(task, docker_runs, docker_environment)
        except Exception as exc:  # a build without network, a daemon that went away: say so in the table
            rows.append(["Docker", 0, "—", f"failed: {type(exc).__name__}: {exc}".replace("|", "/")[:200], "—"])
        else:
            rows += [
                ["Docker", docker_runs, p, *(f"{v:.1f}" for v in median_p90_ms([c[p] for c in measured["docker"]]))]
                for p in PHASES
                if p != "verifier isolation"
            ]
    else:
        rows.append(["Docker", 0, "—", f"no Docker daemon here ({no_docker.rstrip('.')})", "—"])
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "lifecycle.json").write_text(json.dumps(measured, indent=2))
    local_total = median_p90_ms([c["total"] for c in measured["local sandbox"]])[0]
    if "docker" in measured:
        docker_total = median_p90_ms([c["total"] for c in measured["docker"]])[0]
        comparison = (
            f"Docker's median cycle takes {docker_total:.0f} ms, {docker_total / local_total:.0f}× the local sandbox's."
        )
    else:
        comparison = "Docker was not measured here (see its row); a container start alone is typically about 500 ms."
    command = "uv run --group bench python bench/lifecycle.py" + (" --quick" if quick else "")
    return "\n".join(
        [
            "### Sandbox lifecycle",
            "",
            f"`{command}` (task `{task.name}`, fresh environment per cycle: start → `exec true` → stop(delete))",
            "",
            common.markdown_table(["backend", "runs", "phase", "median ms", "p90 ms"], rows),
            "",
            f"A local sandbox goes from nothing to a first command, through the verifier's isolation (fresh "
            f"verifier sandbox, the default) and back in {local_total:.0f} ms (median). {comparison}",
        ]
    )


def main() -> None:
    common.run_section_alone(__doc__, f"{QUICK_RUNS} local and {QUICK_DOCKER_RUNS} Docker runs", section)


if __name__ == "__main__":
    main()
