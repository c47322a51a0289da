"""Harbor task folders for tests and benchmarks: the sample tasks, and a writer of small ones."""

from __future__ import annotations

import textwrap
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SAMPLE_TASKS = REPO / "datasets" / "harbor_tasks"
# Tasks whose solving takes 15+ turns of long terminal output (context pressure): a data set of
# their own, so that the sample tasks' many short-episode tests do not pay for them.
LONG_TASKS = REPO / "datasets" / "long_tasks"


def needs_image(task: Path) -> bool:
    """Whether the task says its tests need its image (`[metadata] needs_image = true`)."""
    metadata = tomllib.loads((task / "task.toml").read_text()).get("metadata", {})
    return metadata.get("needs_image") is True


# The sample tasks the local sandbox runs on the host's root (the others need their image).
HOST_ROOT_TASKS = (
    sorted(p.name for p in SAMPLE_TASKS.iterdir() if (p / "task.toml").is_file() and not needs_image(p))
    if SAMPLE_TASKS.is_dir()
    else []
)

# The sample task most episode tests run, and a phrase of its instruction a policy can match.
TASK = "repair-config"
MARKER = "Repair the service configuration"
SOLVE = (SAMPLE_TASKS / TASK / "solution" / "solve.sh").read_text() if SAMPLE_TASKS.is_dir() else ""


def write_task(
    root: Path,
    name: str = "probe",
    *,
    instruction: str = "Probe task.",
    agent_timeout: float = 60.0,
    verifier_timeout: float = 60.0,
    dockerfile: str = "FROM debian:bookworm-slim\nWORKDIR /app\n",
    task_toml: str = "",
    files: dict[str, str] | None = None,
    test_sh: str = "#!/bin/bash\necho 1 > /logs/verifier/reward.txt\n",
    solve_sh: str = "#!/bin/bash\ntrue\n",
) -> Path:
    """A Harbor task folder `root/name` (scores 1 by default); `files` are paths relative to it,
    `task_toml` is appended to task.toml. Scripted policies pick replies by a marker in `instruction`."""
    task = root / name
    for sub in ("environment", "tests", "solution"):
        (task / sub).mkdir(parents=True, exist_ok=True)
    (task / "task.toml").write_text(
        f'version = "1.0"\n[verifier]\ntimeout_sec = {float(verifier_timeout)}\n'
        f"[agent]\ntimeout_sec = {float(agent_timeout)}\n" + textwrap.dedent(task_toml)
    )
    (task / "instruction.md").write_text(instruction.rstrip("\n") + "\n")
    (task / "environment" / "Dockerfile").write_text(dockerfile)
    for path, text in {"tests/test.sh": test_sh, "solution/solve.sh": solve_sh, **(files or {})}.items():
        (task / path).parent.mkdir(parents=True, exist_ok=True)
        (task / path).write_text(text)
        if path.endswith(".sh"):
            (task / path).chmod(0o755)
    return task
