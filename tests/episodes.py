"""Helpers for episodes of HarborEnvironment in tests: configs, clients, policies, checks."""

from __future__ import annotations

from pathlib import Path

import verifiers.v1 as vf
from verifiers.v1.serve import EnvClient
from verifiers.v1.utils.loaders import load_taskset, resolve_env_config

from harbor_env.taskset import HarborTasksetConfig
from harbor_env.testing.inference import FakeInferenceServer
from harbor_env.testing.policies import ScriptedPolicy, run_script, script_then_finish
from harbor_env.testing.tokenizer import train_client_config

SAMPLE_TASKS = Path(__file__).resolve().parents[1] / "datasets" / "harbor_tasks"

TASK = "repair-config"
MARKER = "Repair the service configuration"
SOLVE = (SAMPLE_TASKS / TASK / "solution" / "solve.sh").read_text()
SOLVING = ScriptedPolicy({MARKER: script_then_finish(run_script(SOLVE), duration=3)})
FAILING = ScriptedPolicy({MARKER: script_then_finish("cat /app/service/config.ini\n")})
INFERENCE_KEY = "sk-inference-test-0123456789"


def env_config(
    work: Path,
    *,
    tasks: str | Path = SAMPLE_TASKS,
    include: list[str] | None = None,
    agent: dict | None = None,
    harness: dict | None = None,
) -> vf.EnvConfig:
    return resolve_env_config(
        {
            "taskset": {"id": "harbor-env", "path": str(tasks), "include": include if include is not None else [TASK]},
            "agent": {
                **(agent or {}),
                "harness": {
                    "id": "harbor-env",
                    "environment": {"type": "local", "kwargs": {"sandbox_dir": str(work / "sandboxes")}},
                    "trials_dir": str(work / "trials"),
                    "keep_trials": True,
                    **(harness or {}),
                },
            },
        }
    )


def train_client(server: FakeInferenceServer, tokenizer: Path) -> vf.TrainClientConfig:
    return train_client_config(server.base_url, tokenizer, api_key_var="HARBOR_ENV_TEST_INFERENCE_KEY")


SAMPLING = vf.SamplingConfig(temperature=1.0, max_tokens=4096)


async def run_in_process(
    config: vf.EnvConfig, server: FakeInferenceServer, tokenizer: Path, sampling: vf.SamplingConfig = SAMPLING
) -> vf.Episode:
    """One episode without the wire (for configs the module's env server does not have)."""
    env = vf.load_environment(config)
    task = next(iter(env.taskset))
    context = vf.ModelContext(model="test-model", client=train_client(server, tokenizer), sampling=sampling)
    async with env.serving():
        return await env.run_episode(task, context)


def task_data(name: str = TASK, tasks: Path = SAMPLE_TASKS) -> dict:
    """The row the orchestrator would send for one task."""
    taskset = HarborTasksetConfig(id="harbor-env", path=str(tasks), include=[name])
    (task,) = load_taskset(taskset)
    return task.data.model_dump(mode="json")


async def run_episode(
    client: EnvClient, server: FakeInferenceServer, tokenizer: Path, data: dict | None = None
) -> vf.Episode:
    return await client.run(train_client(server, tokenizer), "test-model", SAMPLING, data or task_data())


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
