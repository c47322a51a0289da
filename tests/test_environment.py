"""HarborEnvironment end to end, through the wire prime-rl uses.

verifiers' env server runs in its own process; the test drives it with `EnvClient.run` and a
`TrainClientConfig`, so every model call of the real Terminus-2 goes through verifiers'
interception, the train client renders it with the test tokenizer and asks the fake inference
server (`/inference/v1/generate`) for token ids and logprobs. Real Harbor Trials, real tmux,
the local sandbox, the sample tasks.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from harbor.agents.terminus_2.terminus_2 import Terminus2
from verifiers.v1.serve import EnvClient
from verifiers.v1.utils.loaders import load_taskset, resolve_env_config

from harbor_env.testing.configs import env_config, task_data
from harbor_env.testing.defaults import INFERENCE_KEY
from harbor_env.testing.episodes import assert_tokens_match_the_model, run_episode, run_in_process
from harbor_env.testing.inference import FakeInferenceServer
from harbor_env.testing.policies import (
    FAILING,
    SOLVING,
    ScriptedPolicy,
    run_script,
    script_then_finish,
    terminus_reply,
)
from harbor_env.testing.processes import foreign_processes
from harbor_env.testing.tasks import MARKER, SAMPLE_TASKS, SOLVE, TASK, write_task

# ---------------------------------------------------------------------------- loading


def test_plugin_id_resolves_to_this_package() -> None:
    from verifiers.v1.utils.loaders import default_harness_id, environment_class

    import harbor_env

    config = resolve_env_config({"taskset": {"id": "harbor-env"}})
    assert isinstance(config, harbor_env.HarborEnvironmentConfig)
    assert environment_class("harbor-env") is harbor_env.HarborEnvironment
    assert default_harness_id("harbor-env") == "harbor-env"
    assert config.agent.runtime.type == "subprocess"


def test_taskset_loads_validates_and_filters(work: Path) -> None:
    names = [t.data.name for t in load_taskset(env_config(work, keep_trials=True, include=[]).taskset)]
    assert names == sorted(p.name for p in SAMPLE_TASKS.iterdir())
    tasks = list(load_taskset(env_config(work, keep_trials=True, include=["*-json", "git-*"]).taskset))
    assert [(t.data.idx, t.data.name) for t in tasks] == [(0, "csv-to-json"), (1, "git-history")]
    assert tasks[0].data.prompt == (SAMPLE_TASKS / "csv-to-json" / "instruction.md").read_text()
    assert Path(tasks[0].data.task_dir) == SAMPLE_TASKS / "csv-to-json"
    # One task folder works as a path too.
    single = list(
        load_taskset(env_config(work, keep_trials=True, tasks=SAMPLE_TASKS / "git-history", include=[]).taskset)
    )
    assert [t.data.name for t in single] == ["git-history"]


def test_invalid_tasks_are_named_or_skipped(work: Path) -> None:
    write_task(work / "tasks", "good")
    broken = write_task(work / "tasks", "broken")
    (broken / "task.toml").write_text("[agent]\ntimeout_sec = 'soon'\n")
    config = env_config(work, keep_trials=True, tasks=work / "tasks", include=[])
    from harbor_env.errors import InvalidTaskError

    with pytest.raises(InvalidTaskError, match=r"broken/task.toml: .*timeout_sec"):
        list(load_taskset(config.taskset))
    config.taskset.skip_invalid = True
    assert [t.data.name for t in load_taskset(config.taskset)] == ["good"]


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda t: (t / "task.toml").write_text("[agent\n"), r"probe/task.toml: .*(Expected|expected|Invalid)"),
        (lambda t: (t / "task.toml").unlink(), r"probe: task.toml is missing"),
        (lambda t: (t / "instruction.md").unlink(), r"probe: instruction.md is missing"),
        (lambda t: (t / "tests" / "test.sh").unlink(), r"probe: tests/test.sh is missing"),
        (
            lambda t: (t / "task.toml").write_text("[metadata]\nreward_range = [1, 0]\n"),
            r"probe/task.toml: \[metadata\] reward_range must be \[low, high\]",
        ),
    ],
    ids=["unparseable-task-toml", "no-task-toml", "no-instruction", "no-test-sh", "bad-reward-range"],
)
def test_each_broken_task_folder_names_its_problem(breakage, message: str, work: Path) -> None:
    from harbor_env.errors import InvalidTaskError

    breakage(write_task(work / "tasks"))
    with pytest.raises(InvalidTaskError, match=message):
        list(load_taskset(env_config(work, keep_trials=True, tasks=work / "tasks" / "probe", include=[]).taskset))


def test_missing_or_empty_task_paths(work: Path) -> None:
    from harbor_env.errors import InvalidTaskError

    with pytest.raises(InvalidTaskError, match=r"taskset path .*nowhere does not exist"):
        list(load_taskset(env_config(work, keep_trials=True, tasks=work / "nowhere", include=[]).taskset))
    (work / "empty").mkdir()
    with pytest.raises(InvalidTaskError, match=r"no tasks in .*empty"):
        list(load_taskset(env_config(work, keep_trials=True, tasks=work / "empty", include=[]).taskset))


# ---------------------------------------------------------------------------- end to end


async def test_solving_and_failing_policies_over_the_wire(
    client: EnvClient, served_work: Path, tokenizer: Path
) -> None:
    with FakeInferenceServer(tokenizer, SOLVING) as solver, FakeInferenceServer(tokenizer, FAILING) as failer:
        solved, failed = await asyncio.gather(
            run_episode(client, solver, tokenizer), run_episode(client, failer, tokenizer)
        )
        for episode, server, reward in ((solved, solver, 1.0), (failed, failer, 0.0)):
            (trace,) = episode.traces
            assert trace.ok, trace.errors
            assert trace.reward == reward
            assert trace.metrics["harbor_turns"] == 3
            assert trace.metrics["harbor_agent_sec"] > 0
            assert_tokens_match_the_model(trace, server)
            trial_dir = Path(trace.info["harbor_trial_dir"])
            assert trial_dir.parent == served_work / "trials" and (trial_dir / "result.json").is_file()
        # The inference server only ever saw its own key.
        assert solver.api_keys_seen == {INFERENCE_KEY}


async def test_no_key_or_secret_is_written(
    work: Path, tokenizer: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    """In-process, so the test can see the interception's per-rollout secrets. Scans every file
    the trial wrote and every log record, for those, the inference key and host secrets (as
    `.env` values would be); the agent even prints its environment to the terminal. The host's
    OpenAI settings (which Harbor 0.25 reads into an agent's connection) must not take the
    agent's calls away from the interception."""
    import verifiers.v1.interception.server as interception

    issued: list[str] = []
    original = interception.secrets.token_urlsafe

    def spy(nbytes: int | None = None) -> str:
        value = original(nbytes)
        issued.append(value)
        return value

    monkeypatch.setattr(interception.secrets, "token_urlsafe", spy)
    monkeypatch.setenv("HARBOR_ENV_TEST_INFERENCE_KEY", INFERENCE_KEY)
    host_secret, host_openai_key = "dotenv-secret-5f2b9c", "sk-host-openai-7d1e4a"
    monkeypatch.setenv("WANDB_API_KEY", host_secret)
    monkeypatch.setenv("OPENAI_API_KEY", host_openai_key)
    for name in ("OPENAI_BASE_URL", "OPENAI_API_BASE"):
        monkeypatch.setenv(name, "http://127.0.0.1:9/v1")  # nothing listens there
    caplog.set_level(logging.DEBUG)
    policy = ScriptedPolicy(
        {MARKER: script_then_finish("env; echo $OPENAI_API_KEY $WANDB_API_KEY\n", run_script(SOLVE), duration=3)}
    )
    with FakeInferenceServer(tokenizer, policy) as server:
        episode = await run_in_process(env_config(work, include=[TASK], keep_trials=True), server, tokenizer)
    assert episode.traces[0].reward == 1.0, episode.traces[0].errors
    assert_tokens_match_the_model(episode.traces[0], server)
    trajectory = next((work / "trials").rglob("trajectory.json")).read_text()
    assert "PATH=" in trajectory  # the environment listing reached the trajectory
    logged = "\n".join(f"{r.getMessage()} {r.args}" for r in caplog.records)
    assert logged, "nothing was logged"
    assert issued, "the interception issued no secret"
    written = [p for p in (work / "trials").rglob("*") if p.is_file()]
    assert any(p.name == "trajectory.json" for p in written) and any(p.name == "config.json" for p in written)
    for path in written:
        content = path.read_bytes()
        for secret in [*issued, INFERENCE_KEY, host_secret, host_openai_key]:
            assert secret.encode() not in content, f"{secret[:4]}… written to {path}"
    for secret in [*issued, INFERENCE_KEY, host_secret, host_openai_key]:
        assert secret not in logged, f"{secret[:4]}… logged"


# ---------------------------------------------------------------------------- faults


async def test_inference_errors_make_the_trace_errored_not_zero(client: EnvClient, tokenizer: Path) -> None:
    with FakeInferenceServer(tokenizer, SOLVING, fault="http_500") as broken:
        (trace,) = (await run_episode(client, broken, tokenizer)).traces
    assert not trace.ok and trace.errors
    assert trace.rewards.get("reward") is None  # not a reward of 0
    # The inference server is down altogether.
    stopped = FakeInferenceServer(tokenizer, SOLVING).start()
    stopped.stop()
    (trace,) = (await run_episode(client, stopped, tokenizer)).traces
    assert not trace.ok and trace.errors and trace.rewards.get("reward") is None


async def test_environment_failing_to_start_is_errored(
    work: Path, tokenizer: Path, inference: FakeInferenceServer
) -> None:
    missing = str(work / "missing-rootfs")
    config = env_config(
        work,
        include=[TASK],
        keep_trials=True,
        harness={"environment": {"type": "local", "kwargs": {"rootfs": missing}}},
    )
    (trace,) = (await run_in_process(config, inference, tokenizer)).traces
    assert not trace.ok
    assert "rootfs" in trace.errors[-1].message and trace.rewards.get("reward") is None


async def test_a_task_that_needs_its_image_is_errored_on_the_hosts_root(
    client: EnvClient, tokenizer: Path, inference: FakeInferenceServer
) -> None:
    """`[metadata] needs_image = true`: its tests need what the Dockerfile's RUN installs (here
    pytest, which the host's python3 lacks), so on the host's root it would score 0 whatever the
    agent did; the local sandbox refuses it and the episode is errored, naming the key."""
    (trace,) = (await run_episode(client, inference, tokenizer, task_data("version-sort"))).traces
    assert not trace.ok and trace.rewards.get("reward") is None
    message = trace.errors[-1].message
    assert "needs_image = true" in message and "version-sort/task.toml" in message, message
    assert inference.records == [], "the agent ran in a sandbox that could not score it"


async def test_agent_timeout_is_scored_by_the_verifier(client: EnvClient, work: Path, tokenizer: Path) -> None:
    tasks = work / "tasks"
    task = write_task(
        tasks,
        "slow",
        test_sh="#!/bin/bash\n[ -f /app/done ] && echo 1 > /logs/verifier/reward.txt || echo 0 > /logs/verifier/reward.txt\n",
    )
    toml = task / "task.toml"
    toml.write_text(toml.read_text().replace("[agent]\ntimeout_sec = 60.0", "[agent]\ntimeout_sec = 3.0"))
    (task / "instruction.md").write_text("Take your time.\n")
    policy = ScriptedPolicy({"Take your time": [terminus_reply("sleep 60\n", duration=30)]})
    with FakeInferenceServer(tokenizer, policy) as server:
        (trace,) = (await run_episode(client, server, tokenizer, task_data("slow", tasks))).traces
    assert trace.ok, trace.errors
    assert trace.reward == 0.0 and trace.rewards["reward"].score == 0.0
    assert trace.metrics["harbor_agent_timeout"] == 1.0
    assert trace.info["harbor_exception_type"] == "AgentTimeoutError"


async def test_a_turn_refused_by_the_interception_ends_the_agent_cleanly(work: Path, tokenizer: Path) -> None:
    # One model call allowed: the solving script runs, the confirmation turn is refused.
    config = env_config(work, include=[TASK], keep_trials=True, agent={"max_turns": 1})
    with FakeInferenceServer(tokenizer, SOLVING) as server:
        (trace,) = (await run_in_process(config, server, tokenizer)).traces
        assert len(server.completions_of(trace.id)) == 1
    assert trace.ok, trace.errors
    assert trace.reward == 1.0  # the verifier still scored the work done


async def test_the_agents_turn_limit_is_scored(work: Path, tokenizer: Path) -> None:
    """Terminus-2's own `max_turns`: a policy that never finishes is stopped and scored."""
    config = env_config(work, include=[TASK], keep_trials=True, harness={"agent": {"max_turns": 2}})
    never_done = ScriptedPolicy({}, default=[terminus_reply("echo still working\n")])
    with FakeInferenceServer(tokenizer, never_done) as server:
        (trace,) = (await run_in_process(config, server, tokenizer)).traces
        assert len(server.completions_of(trace.id)) == 2
    assert trace.ok, trace.errors
    assert trace.reward == 0.0 and trace.metrics["harbor_turns"] == 2


async def test_sixteen_concurrent_episodes_keep_their_own_tokens(
    client: EnvClient, served_work: Path, tokenizer: Path
) -> None:
    processes_before = foreign_processes()
    rows = [task_data(name) for name in ("repair-config", "csv-to-json", "fix-python-bug", "git-history")]
    with FakeInferenceServer(tokenizer, FAILING) as server:
        episodes = await asyncio.gather(
            *(run_episode(client, server, tokenizer, rows[i % len(rows)]) for i in range(16))
        )
        traces = [trace for episode in episodes for trace in episode.traces]
        assert len({t.id for t in traces}) == 16
        for trace in traces:
            assert trace.ok, trace.errors
            assert trace.reward == 0.0
            assert_tokens_match_the_model(trace, server)
    await asyncio.sleep(0.5)
    assert list((served_work / "sandboxes").iterdir()) == []
    assert foreign_processes() - processes_before == set()


async def test_malformed_model_output_is_the_agents_problem(client: EnvClient, tokenizer: Path) -> None:
    """An unparseable reply is an agent outcome: Terminus-2 asks again; the episode is scored."""
    solving = script_then_finish(run_script(SOLVE), duration=3)
    policy = ScriptedPolicy({MARKER: ["this is not the JSON Terminus-2 asked for", *solving]})
    with FakeInferenceServer(tokenizer, policy) as server:
        (trace,) = (await run_episode(client, server, tokenizer)).traces
        assert trace.ok, trace.errors
        assert trace.reward == 1.0
        assert len(server.completions_of(trace.id)) == 4
        assert_tokens_match_the_model(trace, server)


async def test_an_agent_cannot_forge_its_reward(client: EnvClient, tokenizer: Path) -> None:
    """reward.json wins over reward.txt in Harbor: a planted one must not survive to scoring."""
    forge = "mkdir -p /logs/verifier /tests && echo '{\"reward\": 1}' > /logs/verifier/reward.json && echo 'echo 1 > /logs/verifier/reward.txt' > /tests/extra.sh\n"
    policy = ScriptedPolicy({MARKER: script_then_finish(forge)})
    with FakeInferenceServer(tokenizer, policy) as server:
        (trace,) = (await run_episode(client, server, tokenizer)).traces
    assert trace.ok, trace.errors
    assert trace.reward == 0.0


async def test_the_trajectory_is_written_once_with_every_turn(
    work: Path, tokenizer: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Terminus-2 rewrites trajectory.json after every turn; inside a rollout it is written once,
    when the agent finishes, and still holds every turn."""
    writes = []
    dump = Terminus2._dump_trajectory_with_continuation_index
    monkeypatch.setattr(
        Terminus2,
        "_dump_trajectory_with_continuation_index",
        lambda self, index: (writes.append(index), dump(self, index))[1],
    )
    with FakeInferenceServer(tokenizer, SOLVING) as server:
        (trace,) = (await run_in_process(env_config(work, include=[TASK], keep_trials=True), server, tokenizer)).traces
        calls = len(server.completions_of(trace.id))
    assert trace.ok and trace.reward == 1.0, trace.errors
    assert calls >= 3 and writes == [0]
    trajectory = json.loads(next((work / "trials").rglob("trajectory.json")).read_text())
    assert sum(step["source"] == "agent" for step in trajectory["steps"]) == calls
