"""Faults along the whole path (inference server, environment, verifier): each one is an errored
trace, never a silent reward of 0, and the env server keeps serving afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from pathlib import Path

import pytest
from verifiers.v1.serve import EnvClient

from harbor_env.testing.configs import task_data
from harbor_env.testing.episodes import run_episode
from harbor_env.testing.inference import FakeInferenceServer
from harbor_env.testing.policies import SOLVING, ScriptedPolicy, script_then_finish, terminus_reply
from harbor_env.testing.processes import foreign_processes
from harbor_env.testing.tasks import TASK, write_task

QUICK = ScriptedPolicy({}, default=script_then_finish("ls\n"))


def assert_errored(trace, *, mentions: str) -> None:
    assert not trace.ok, "an infrastructure failure must error the trace"
    assert trace.rewards.get("reward") is None, "…not score it"
    assert any(mentions in error.message for error in trace.errors), [e.message for e in trace.errors]


@pytest.mark.parametrize("fault", ["garbage", "drop"])
async def test_broken_inference_replies(fault: str, client: EnvClient, tokenizer: Path) -> None:
    with FakeInferenceServer(tokenizer, QUICK, fault=fault) as server:
        (trace,) = (await run_episode(client, server, tokenizer, task_data("git-history"))).traces
    assert not trace.ok and trace.rewards.get("reward") is None and trace.errors
    if fault == "garbage":
        # HTTP 200 with an HTML body: the interception answers the agent 502 with the parser's
        # error; the message says that the server's reply could not be read, not that it said 502.
        assert_errored(trace, mentions="the inference server's reply could not be read: not an error status")
        assert not any("model endpoint answered HTTP 502" in error.message for error in trace.errors)


VERIFIER_FAULTS = {
    "crashes": ("#!/bin/bash\nexit 3\n", "RewardFileNotFoundError"),
    "malformed-json": ("#!/bin/bash\necho '{\"reward\": ' > /logs/verifier/reward.json\n", "reward"),
    "nan": ("#!/bin/bash\necho nan > /logs/verifier/reward.txt\n", "nan"),
    "infinite": ("#!/bin/bash\necho '{\"reward\": Infinity}' > /logs/verifier/reward.json\n", "nf"),
    # The reward rule (rewards.py): each error names reward.json or the range to declare.
    "boolean": (
        "#!/bin/bash\necho '{\"reward\": true}' > /logs/verifier/reward.json\n",
        "reward.json: `reward` is true, a boolean",
    ),
    "huge-integer": (
        '#!/bin/bash\necho "{\\"reward\\": 1$(printf \'0%.0s\' {1..400})}" > /logs/verifier/reward.json\n',
        "reward.json: `reward` is an integer of 401 digits",
    ),
    "huge-metric": (
        '#!/bin/bash\necho "{\\"reward\\": 1, \\"n\\": 1$(printf \'0%.0s\' {1..400})}" > /logs/verifier/reward.json\n',
        "reward.json: `n` is an integer",
    ),
    "above-range": (
        "#!/bin/bash\necho 1.5 > /logs/verifier/reward.txt\n",
        "reward 1.5 is outside the task's range [0, 1]",
    ),
    "below-range": (
        "#!/bin/bash\necho '{\"reward\": -1}' > /logs/verifier/reward.json\n",
        "reward -1.0 is outside the task's range [0, 1]",
    ),
}


@pytest.mark.parametrize("fault", sorted(VERIFIER_FAULTS))
async def test_verifier_faults(fault: str, client: EnvClient, tokenizer: Path, work: Path) -> None:
    test_sh, mentions = VERIFIER_FAULTS[fault]
    task = write_task(work / "tasks", fault, test_sh=test_sh)
    toml = task / "task.toml"
    toml.write_text(toml.read_text().replace("[verifier]\ntimeout_sec = 60.0", "[verifier]\ntimeout_sec = 2.0"))
    with FakeInferenceServer(tokenizer, QUICK) as server:
        (trace,) = (await run_episode(client, server, tokenizer, task_data(fault, work / "tasks"))).traces
    assert_errored(trace, mentions=mentions)


async def test_environment_killed_mid_episode(client: EnvClient, tokenizer: Path, served_work: Path) -> None:
    """The agent's sandbox disappears under it: killed from the host while the agent works."""
    policy = ScriptedPolicy({}, default=[terminus_reply("sleep 8\n", duration=8), *script_then_finish("ls\n")])
    with FakeInferenceServer(tokenizer, policy) as server:
        episode = asyncio.create_task(run_episode(client, server, tokenizer, task_data("git-history")))
        killed = await asyncio.to_thread(_kill_a_sandbox, served_work / "sandboxes")
        (trace,) = (await episode).traces
    assert killed
    assert not trace.ok and trace.rewards.get("reward") is None and trace.errors


async def test_a_verifier_timeout_on_a_sandbox_that_is_gone_is_errored(
    client: EnvClient, tokenizer: Path, work: Path, served_work: Path
) -> None:
    """The tests run past the verifier's timeout. Were the sandbox still answering, that would be
    the agent's doing, scored 0 (test_adversarial.py); here the verifier's sandbox is killed from
    the host while the tests run: an infrastructure failure, errored."""
    write_task(
        work / "tasks",
        "verifier-lost",
        test_sh="#!/bin/bash\nsleep 30\necho 1 > /logs/verifier/reward.txt\n",
        task_toml='[metadata]\nverifier_sandbox = "fresh"\n',
        verifier_timeout=6,
    )
    with FakeInferenceServer(tokenizer, QUICK) as server:
        episode = asyncio.create_task(
            run_episode(client, server, tokenizer, task_data("verifier-lost", work / "tasks"))
        )
        killed = await asyncio.to_thread(_kill_a_sandbox, served_work / "sandboxes", nth=2)
        (trace,) = (await episode).traces
    assert killed
    assert_errored(trace, mentions="")
    assert trace.metrics.get("harbor_verifier_forfeit", 0.0) == 0.0


def _kill_a_sandbox(sandboxes: Path, wait: float = 30.0, nth: int = 1) -> bool:
    """SIGKILL the bubblewrap processes of the `nth` sandbox that appears under `sandboxes` (a
    fresh verifier's sandbox is the second of its episode)."""
    deadline = time.monotonic() + wait
    seen: list[str] = []
    while time.monotonic() < deadline:
        found = {
            pid: cmdline.split(f"{sandboxes}/", 1)[1].split("/", 1)[0]
            for pid, cmdline in foreign_processes()
            if cmdline.split(" ")[0].endswith("bwrap") and f"{sandboxes}/" in cmdline
        }
        seen += sorted({name for name in found.values() if name not in seen})
        victims = [pid for pid, name in found.items() if len(seen) >= nth and name == seen[nth - 1]]
        if victims:
            time.sleep(1.0)  # let the agent get going
            for pid in victims:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return True
        time.sleep(0.1)
    return False


async def test_the_env_server_keeps_serving_after_faults(client: EnvClient, tokenizer: Path) -> None:
    with FakeInferenceServer(tokenizer, SOLVING) as server:
        (trace,) = (await run_episode(client, server, tokenizer)).traces
    assert trace.ok and trace.reward == 1.0


async def test_a_cancelled_episode_leaves_nothing_behind(work: Path, tokenizer: Path) -> None:
    """prime-rl cancels stale rollouts: no sandbox, tmux server, trial folder or descriptor survives."""
    import verifiers.v1 as vf

    from harbor_env.sandbox.commands import command_server
    from harbor_env.testing.configs import SAMPLING, env_config
    from harbor_env.testing.episodes import train_client

    config = env_config(work, include=[TASK], harness={"keep_trials": False})
    env = vf.load_environment(config)
    task = next(iter(env.taskset))
    policy = ScriptedPolicy({}, default=[terminus_reply("tmux new -d -s extra 'sleep 300'; sleep 300\n", duration=60)])
    if os.geteuid() == 0:
        # The command server's socket lives as long as this process (one per env server), not
        # per episode: have it before counting, as any earlier test of the suite leaves it.
        command_server().start()
    processes_before = foreign_processes()
    descriptors_before = len(os.listdir("/proc/self/fd"))
    with FakeInferenceServer(tokenizer, policy) as server:
        context = vf.ModelContext(model="test-model", client=train_client(server, tokenizer), sampling=SAMPLING)
        async with env.serving():
            episode = asyncio.create_task(env.run_episode(task, context))
            deadline = time.monotonic() + 60
            while not server.records and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await asyncio.sleep(2)  # the agent's command is running in the sandbox now
            assert any((work / "sandboxes").iterdir()) and any((work / "trials").iterdir())
            episode.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await episode
    await asyncio.sleep(0.5)
    assert len(os.listdir("/proc/self/fd")) <= descriptors_before
    assert foreign_processes() - processes_before == set()
    assert list((work / "sandboxes").iterdir()) == []
    assert list((work / "trials").iterdir()) == []


@pytest.mark.parametrize("retries", [0, 1])
async def test_failures_before_the_agent_starts_are_retried(retries: int, work: Path, tokenizer: Path) -> None:
    from harbor_env.testing.configs import env_config
    from harbor_env.testing.episodes import run_in_process
    from harbor_env.testing.policies import SOLVING as solving

    environment = {"import_path": "flaky_sandbox:FlakyOnceSandbox", "kwargs": {"sandbox_dir": str(work / "sandboxes")}}
    config = env_config(
        work,
        include=[TASK],
        keep_trials=True,
        harness={"environment": environment, "retries": retries, "retry_backoff_sec": 0.1},
    )
    with FakeInferenceServer(tokenizer, solving) as server:
        (trace,) = (await run_in_process(config, server, tokenizer)).traces
    if retries == 0:
        assert_errored(trace, mentions="sandbox provider unavailable")
    else:
        assert trace.ok and trace.reward == 1.0 and trace.metrics["harbor_attempts"] == 2


async def test_failures_after_the_agent_started_are_not_retried(work: Path, tokenizer: Path) -> None:
    """A retry then would put two attempts' tokens in one trace: the episode is errored instead."""
    from harbor_env.testing.configs import env_config
    from harbor_env.testing.episodes import run_in_process

    config = env_config(work, include=[TASK], keep_trials=True, harness={"retries": 2, "retry_backoff_sec": 0.1})
    with FakeInferenceServer(tokenizer, QUICK, fault="http_500") as server:
        (trace,) = (await run_in_process(config, server, tokenizer)).traces
    assert not trace.ok and trace.rewards.get("reward") is None
    assert trace.metrics["harbor_attempts"] == 1


async def test_episodes_do_not_accumulate_descriptors(work: Path, tokenizer: Path) -> None:
    """An env server lives for days: descriptors must not grow with the episodes it has run."""
    import verifiers.v1 as vf

    from harbor_env.testing.configs import SAMPLING, env_config
    from harbor_env.testing.episodes import train_client

    env = vf.load_environment(env_config(work, keep_trials=True, include=["git-history"]))
    task = next(iter(env.taskset))
    with FakeInferenceServer(tokenizer, QUICK) as server:
        context = vf.ModelContext(model="test-model", client=train_client(server, tokenizer), sampling=SAMPLING)
        async with env.serving():
            counts = []
            for _ in range(4):
                assert (await env.run_episode(task, context)).traces[0].ok
                counts.append(len(os.listdir("/proc/self/fd")))
    assert counts[-1] <= counts[0], counts


async def test_a_hung_inference_server_errors_the_episode(work: Path, tokenizer: Path, caplog) -> None:
    """A model call that never returns is the server's failure, not the agent's: errored, and
    long before the task's agent timeout (which would have been scored)."""
    from harbor_env.testing.configs import env_config
    from harbor_env.testing.episodes import run_in_process

    task = write_task(work / "tasks", "hang", test_sh="#!/bin/bash\necho 0 > /logs/verifier/reward.txt\n")
    config = env_config(
        work, keep_trials=True, tasks=work / "tasks", include=["hang"], harness={"agent": {"model_timeout_sec": 2}}
    )
    assert "timeout_sec = 60.0" in (task / "task.toml").read_text()  # the agent's own timeout
    started = time.monotonic()
    with FakeInferenceServer(tokenizer, QUICK, fault="hang") as server, caplog.at_level(logging.WARNING):
        (trace,) = (await run_in_process(config, server, tokenizer)).traces
    assert_errored(trace, mentions="Timeout")
    logged = [r.getMessage() for r in caplog.records if r.name == "harbor_env.harness"]
    assert any("episode of hang errored, not scored" in m and "Timeout" in m for m in logged), logged
    assert time.monotonic() - started < 45
    assert trace.metrics["harbor_agent_timeout"] == 0.0


async def test_an_environment_slower_than_its_start_timeout_is_errored_and_retried(work: Path, tokenizer: Path) -> None:
    from harbor_env.testing.configs import env_config
    from harbor_env.testing.episodes import run_in_process

    write_task(work / "tasks", "slow", task_toml="[environment]\nbuild_timeout_sec = 1.0\n")
    environment = {"import_path": "flaky_sandbox:SlowStartSandbox", "kwargs": {"sandbox_dir": str(work / "sandboxes")}}
    config = env_config(
        work,
        keep_trials=True,
        tasks=work / "tasks",
        include=["slow"],
        harness={"environment": environment, "retries": 1, "retry_backoff_sec": 0.1},
    )
    started = time.monotonic()
    with FakeInferenceServer(tokenizer, QUICK) as server:
        (trace,) = (await run_in_process(config, server, tokenizer)).traces
    assert_errored(trace, mentions="EnvironmentStartTimeoutError")
    assert trace.metrics["harbor_attempts"] == 2
    assert time.monotonic() - started < 20
    assert not (work / "sandboxes").exists() or list((work / "sandboxes").iterdir()) == []
