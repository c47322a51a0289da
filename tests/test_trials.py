"""Real Harbor Trials on the sample tasks, in the local sandbox (no Docker, no network)."""

from __future__ import annotations

import asyncio
import os
import tomllib
from pathlib import Path

import pytest
from harbor.models.task.task import Task

from harbor_env.errors import LocalSandboxError
from harbor_env.sandbox.limits import CGROUP_ROOT
from harbor_env.testing.processes import foreign_processes
from harbor_env.testing.tasks import HOST_ROOT_TASKS, SAMPLE_TASKS, write_task
from harbor_env.testing.trials import reward_of, run_trial

ALL_TASKS = sorted(p.name for p in SAMPLE_TASKS.iterdir() if (p / "task.toml").is_file())
TASK_NAMES = HOST_ROOT_TASKS  # the others need their image: tests/test_containers.py runs them


def test_sample_tasks_are_valid_harbor_tasks() -> None:
    assert len(TASK_NAMES) >= 6 and len(ALL_TASKS) - len(TASK_NAMES) >= 3
    partial_credit = 0
    for name in ALL_TASKS:
        folder = SAMPLE_TASKS / name
        task = Task(folder)  # Harbor's own parser
        assert task.instruction.strip(), name
        for required in ("tests/test.sh", "solution/solve.sh", "environment/Dockerfile"):
            assert (folder / required).is_file(), f"{name}: {required}"
        assert os.access(folder / "tests/test.sh", os.X_OK) and os.access(folder / "solution/solve.sh", os.X_OK)
        dockerfile = (folder / "environment/Dockerfile").read_text()
        assert dockerfile.startswith("FROM ") and "tmux" in dockerfile, name
        partial_credit += "reward.json" in (folder / "tests/test.sh").read_text()
        assert "network_mode" not in tomllib.loads((folder / "task.toml").read_text()).get("environment", {})
    assert partial_credit >= 1


@pytest.mark.parametrize("name", TASK_NAMES)
async def test_oracle_scores_one_and_nop_scores_zero(name: str, work: Path) -> None:
    oracle, nop = await asyncio.gather(
        run_trial(SAMPLE_TASKS / name, work, "oracle"),
        run_trial(SAMPLE_TASKS / name, work, "nop"),
    )
    assert reward_of(oracle) == 1
    assert reward_of(nop) == 0


def _cgroup_groups() -> set[Path]:
    return {p for p in CGROUP_ROOT.glob("**/harbor-env/*") if p.is_dir()}


async def test_fifty_trials_leave_no_process_directory_or_descriptor(work: Path) -> None:
    processes_before = foreign_processes()
    groups_before = _cgroup_groups()
    descriptors_before = len(os.listdir("/proc/self/fd"))
    limit = asyncio.Semaphore(8)

    async def one(index: int) -> float:
        agent = "oracle" if index % 2 == 0 else "nop"
        async with limit:
            return reward_of(await run_trial(SAMPLE_TASKS / TASK_NAMES[index % len(TASK_NAMES)], work, agent))

    rewards = await asyncio.gather(*(one(i) for i in range(50)))
    assert rewards == [1.0 if i % 2 == 0 else 0.0 for i in range(50)]
    assert len(list((work / "trials").iterdir())) == 50
    await asyncio.sleep(0.2)
    assert foreign_processes() - processes_before == set()
    assert list((work / "sandboxes").iterdir()) == []
    assert _cgroup_groups() - groups_before == set()
    assert len(os.listdir("/proc/self/fd")) <= descriptors_before


async def test_missing_rootfs_fails_the_trial_with_a_clear_error(work: Path) -> None:
    with pytest.raises(LocalSandboxError, match="rootfs .* is not a directory; unpack the task image"):
        await run_trial(SAMPLE_TASKS / TASK_NAMES[0], work, "oracle", rootfs=str(work / "nope"))


async def test_a_task_writing_no_reward_is_an_error_not_zero(work: Path) -> None:
    task = write_task(work, test_sh="#!/bin/bash\necho 'forgot the reward'\n")
    result = await run_trial(task, work, "oracle")
    assert result.exception_info is not None
    assert result.exception_info.exception_type == "RewardFileNotFoundError"
    assert result.verifier_result is None


SEPARATE_VERIFIER_TOML = """\
version = "1.0"
artifacts = ["/app/answer.txt"]
[environment]
storage_mb = 64
[verifier]
timeout_sec = 60.0
environment_mode = "separate"
[agent]
timeout_sec = 60.0
"""
# Scores the declared artifact, and fails if anything else of the agent's sandbox is visible.
SEPARATE_VERIFIER_TEST = """#!/bin/bash
if [ -e /app/notes.txt ] || [ -n "$(ls -A /logs/verifier | grep -v test-stdout)" ]; then echo 0 > /logs/verifier/reward.txt; exit 0; fi
if grep -qx 42 /app/answer.txt; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
"""


@pytest.mark.parametrize(
    ("solve", "expected"),
    [
        ("echo 42 > /app/answer.txt", 1.0),
        ("echo 41 > /app/answer.txt; echo '{\"reward\": 1}' > /logs/verifier/reward.json", 0.0),
    ],
)
async def test_separate_verifier_mode_sees_only_the_artifacts(solve: str, expected: float, work: Path) -> None:
    """Harbor's separate-verifier mode: the verifier gets a fresh sandbox with the declared
    artifacts only, so a reward the agent planted never reaches it."""
    task = write_task(
        work / "tasks",
        test_sh=SEPARATE_VERIFIER_TEST,
        solve_sh=f"#!/bin/bash\necho scratch > /app/notes.txt\n{solve}\n",
    )
    (task / "task.toml").write_text(SEPARATE_VERIFIER_TOML)
    # The verifier's own image, with the tests baked in (Harbor 0.21 requires one; newer
    # versions would otherwise start a fresh copy of the agent's environment).
    (task / "tests" / "Dockerfile").write_text("FROM debian:bookworm-slim\nWORKDIR /app\nCOPY test.sh /tests/test.sh\n")
    result = await run_trial(task, work, "oracle")
    assert reward_of(result) == expected
    assert list((work / "sandboxes").iterdir()) == []
