"""The long sample tasks (datasets/long_tasks): real Harbor tasks whose solving takes 15+ turns,
each printing kilobytes of terminal output, so that context pressure is real in tests
(tests/test_context_window.py summarizes through them)."""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
from pathlib import Path

import pytest
import verifiers.v1 as vf
from harbor.models.task.task import Task

from harbor_env.testing.configs import env_config
from harbor_env.testing.episodes import assert_tokens_match_the_model, run_in_process
from harbor_env.testing.inference import FakeInferenceServer
from harbor_env.testing.stepwise import StepwisePolicy, solving_policy
from harbor_env.testing.tasks import LONG_TASKS
from harbor_env.testing.trials import reward_of, run_trial

NAMES = sorted(p.name for p in LONG_TASKS.iterdir() if (p / "task.toml").is_file())
SAMPLING = vf.SamplingConfig(temperature=1.0, max_tokens=1024)


def test_the_long_tasks_are_valid_harbor_tasks() -> None:
    assert len(NAMES) >= 2
    for name in NAMES:
        folder = LONG_TASKS / name
        assert Task(folder).instruction.strip(), name  # Harbor's own parser
        for script in ("tests/test.sh", "solution/solve.sh"):
            assert os.access(folder / script, os.X_OK), f"{name}: {script}"
        assert "tmux" in (folder / "environment/Dockerfile").read_text(), name
        assert len(solving_policy(folder).steps) >= 15, name


@pytest.mark.parametrize("name", NAMES)
async def test_oracle_scores_one_and_nop_scores_zero(name: str, work: Path) -> None:
    oracle, nop = await asyncio.gather(
        run_trial(LONG_TASKS / name, work, "oracle"), run_trial(LONG_TASKS / name, work, "nop")
    )
    assert reward_of(oracle) == 1
    assert reward_of(nop) == 0


@pytest.mark.parametrize("name", NAMES)
async def test_a_stepwise_solver_takes_fifteen_turns_of_long_output(name: str, work: Path, tokenizer: Path) -> None:
    """Terminus-2 with a policy that does one step a turn: reward 1 after 15+ turns, each turn's
    terminal output adding a thousand tokens and more to the chat; one sample, exact. The same
    policy stopped halfway scores 0: the task needs every step."""
    config = env_config(work, tasks=LONG_TASKS, include=[name])
    policy = solving_policy(LONG_TASKS / name)
    halfway = StepwisePolicy(policy.steps[: len(policy.steps) // 2], duration=policy.duration)
    # One after the other: the renderers package's first look-up of a server's max_model_len
    # waits on an asyncio lock made at import, which two concurrent first look-ups would bind to
    # this test's event loop (and fail the next test's, pytest giving each test its own loop).
    with FakeInferenceServer(tokenizer, policy) as solver, FakeInferenceServer(tokenizer, halfway) as quitter:
        solved = await run_in_process(config, solver, tokenizer, SAMPLING)
        quit_ = await run_in_process(config, quitter, tokenizer, SAMPLING)
        (trace,) = solved.traces
        calls = solver.completions_of(trace.id)
        assert_tokens_match_the_model(trace, solver)
    assert trace.ok, trace.errors
    assert trace.reward == 1.0
    assert trace.metrics["harbor_turns"] >= 15
    growth = [len(b.prompt_ids) - len(a.prompt_ids) - len(a.completion_ids) for a, b in itertools.pairwise(calls)]
    assert statistics.median(growth) >= 1000, growth  # what the terminal printed, per turn
    (stopped,) = quit_.traces
    assert stopped.ok, stopped.errors
    assert stopped.reward == 0.0
