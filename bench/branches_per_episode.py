"""Training samples per episode: how many branches (samples) each HarborEnvironment episode gives.

Runs every sample task once, in-process (verifiers' interception + train client), with real
Terminus-2 in the local sandbox and a scripted policy that solves the task with its own
solution script, then finishes. Prints, per episode: reward, turns, branches, sampled tokens,
tokens in the branches, and what step-wise training (every call's prompt + completion as its
own sample) would have cost.

Usage: uv run python bench/branches_per_episode.py [--tasks datasets/harbor_tasks]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from harbor_env.testing.defaults import apply_environment_defaults

apply_environment_defaults()  # before verifiers and Harbor load

import verifiers.v1 as vf  # noqa: E402

from harbor_env.testing.configs import SAMPLING, env_config  # noqa: E402
from harbor_env.testing.episodes import train_client  # noqa: E402
from harbor_env.testing.inference import FakeInferenceServer  # noqa: E402
from harbor_env.testing.policies import SolveEachTask  # noqa: E402
from harbor_env.testing.tasks import SAMPLE_TASKS  # noqa: E402
from harbor_env.testing.tokenizer import build_test_tokenizer  # noqa: E402


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=Path, default=SAMPLE_TASKS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="harbor-env-bench-") as tmp:
        work = Path(tmp)
        tokenizer = build_test_tokenizer(work / "tokenizer")
        config = env_config(work, tasks=args.tasks)
        env = vf.load_environment(config)
        with FakeInferenceServer(tokenizer, SolveEachTask(args.tasks, duration=3)) as server:
            context = vf.ModelContext(
                model="test-model",
                client=train_client(server, tokenizer),
                sampling=SAMPLING,
            )
            rows = []
            async with env.serving():
                for task in env.taskset:
                    episode = await env.run_episode(task, context)
                    (trace,) = episode.traces
                    calls = server.completions_of(trace.id)
                    stepwise = sum(len(c.prompt_ids) + len(c.completion_ids) for c in calls)
                    in_branches = sum(len(b.token_ids) for b in trace.branches)
                    sampled = sum(sum(b.sampled_mask) for b in trace.branches)
                    rows.append(
                        (task.data.name, trace.reward, len(calls), len(trace.branches), sampled, in_branches, stepwise)
                    )
    print("| task | reward | turns | branches | sampled tokens | tokens in branches | step-wise tokens | ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, reward, turns, branches, sampled, in_branches, stepwise in rows:
        print(
            f"| {name} | {reward} | {turns} | {branches} | {sampled} | {in_branches} | {stepwise} "
            f"| {in_branches / stepwise:.2f} |"
        )
    episodes, branches = len(rows), sum(r[3] for r in rows)
    print(f"\n{episodes} episodes, {branches} branches: {branches / episodes:.2f} branches per episode")


if __name__ == "__main__":
    asyncio.run(main())
