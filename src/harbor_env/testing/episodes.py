"""Running episodes of HarborEnvironment against the fake model, and checking what the trainer gets."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import verifiers.v1 as vf
from verifiers.v1.serve import EnvClient

from harbor_env.testing.configs import SAMPLING, task_data
from harbor_env.testing.defaults import INFERENCE_KEY_VAR
from harbor_env.testing.inference import FakeInferenceServer
from harbor_env.testing.policies import SolveEachTask
from harbor_env.testing.tasks import SAMPLE_TASKS
from harbor_env.testing.tokenizer import build_test_tokenizer, train_client_config


def train_client(server: FakeInferenceServer, tokenizer: Path) -> vf.TrainClientConfig:
    """The trainer's client on the fake model, its key read from INFERENCE_KEY_VAR."""
    return train_client_config(server.base_url, tokenizer, api_key_var=INFERENCE_KEY_VAR)


async def run_in_process(
    config: vf.EnvConfig, server: FakeInferenceServer, tokenizer: Path, sampling: vf.SamplingConfig = SAMPLING
) -> vf.Episode:
    """One episode of the config's first task without the wire (no env server)."""
    env = vf.load_environment(config)
    task = next(iter(env.taskset))
    context = vf.ModelContext(model="test-model", client=train_client(server, tokenizer), sampling=sampling)
    async with env.serving():
        return await env.run_episode(task, context)


async def run_episode(
    client: EnvClient, server: FakeInferenceServer, tokenizer: Path, data: dict | None = None
) -> vf.Episode:
    """One episode through an env server (the sample task `repair-config` by default)."""
    return await client.run(train_client(server, tokenizer), "test-model", SAMPLING, data or task_data())


def episode_failure(episode: Any) -> str | None:
    """Why an episode does not count as solved, or None if every trace scored 1.0."""
    if not episode.traces:
        return "no trace"
    for trace in episode.traces:
        if not trace.ok:
            error = trace.last_error
            return f"errored: {error.type}: {error.message[:200]}" if error else f"stopped: {trace.stop_condition}"
        if trace.reward != 1.0:
            return f"reward {trace.reward}"
    return None


@dataclass
class Batch:
    """A batch of episodes: its wall time, and why any episode did not score reward 1.0."""

    seconds: float
    episodes: int
    failures: list[str]

    @property
    def per_minute(self) -> float:
        return self.episodes / self.seconds * 60


async def run_batch(
    client: EnvClient, model: vf.TrainClientConfig, rows: list[dict[str, Any]], concurrency: int
) -> Batch:
    """Run every row through the env server, at most `concurrency` episodes at a time."""
    limit = asyncio.Semaphore(concurrency)

    async def one(row: dict[str, Any]) -> str | None:
        async with limit:
            return episode_failure(await client.run(model, "test-model", SAMPLING, row))

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(one(row) for row in rows))
    return Batch(time.perf_counter() - started, len(rows), [why for why in outcomes if why is not None])


@contextlib.contextmanager
def solving_model(work: Path) -> Iterator[tuple[FakeInferenceServer, Path]]:
    """The fake model (in a thread of this process) solving every sample task, and its tokenizer."""
    tokenizer = build_test_tokenizer(work / "tokenizer")
    with FakeInferenceServer(tokenizer, SolveEachTask(SAMPLE_TASKS, wait_until_done=True)) as server:
        yield server, tokenizer


def assert_tokens_match_the_model(trace: vf.Trace, server: FakeInferenceServer) -> None:
    """The trainer sees exactly the model's tokens and logprobs, and nothing else as sampled."""
    completions = server.completions_of(trace.id)
    assert completions, "no generate request carried this trace's session id"
    assert len(trace.branches) == 1, f"{len(trace.branches)} branches: the chat was not append-only"
    branch = trace.branches[0]
    sampled = [t for t, m in zip(branch.token_ids, branch.sampled_mask, strict=False) if m]
    sampled_logprobs = [lp for lp, m in zip(branch.logprobs, branch.sampled_mask, strict=False) if m]
    assert sampled == [t for c in completions for t in c.completion_ids]
    assert sampled_logprobs == [lp for c in completions for lp in c.logprobs]
    assert all(lp == 0.0 for lp, m in zip(branch.logprobs, branch.sampled_mask, strict=False) if not m)
    # Each turn's prompt is exactly what the branch holds before that turn's completion.
    position = 0
    for completion in completions:
        start = len(completion.prompt_ids)
        assert branch.token_ids[:start] == completion.prompt_ids
        assert not any(branch.sampled_mask[position:start])
        position = start + len(completion.completion_ids)
