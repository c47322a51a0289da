"""Episodes in real containers: Harbor's podman environment (Harbor's docker code path with
podman's compose command), driven through the env-server wire prime-rl uses, with the project's
Terminus-2 and the fake inference server.

The sample tasks here need their image: their tests use what the Dockerfile's RUN step
installs (pytest, sqlite3, tcc), which the host lacks. Run `bash scripts/containers/setup.sh`
once (podman, podman-compose, offline base images); without it these tests are skipped, and
with HARBOR_ENV_REQUIRE_CONTAINERS=1 (CI) they fail instead.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from conftest import SAMPLE_TASKS, write_task
from verifiers.v1.serve import EnvClient

from harbor_env.testing.configs import env_config, task_data
from harbor_env.testing.containers import leftovers, our_containers, podman, podman_unready
from harbor_env.testing.env_server import connected, env_server_process
from harbor_env.testing.episodes import assert_tokens_match_the_model, run_episode
from harbor_env.testing.inference import FakeInferenceServer, PolicyInput
from harbor_env.testing.policies import (
    ScriptedPolicy,
    SolveEachTask,
    run_script,
    script_then_finish,
    terminus_reply,
)

NEEDS_IMAGE = ["c-checksum", "sqlite-report", "version-sort"]
UNREADY = podman_unready()
LOCK = "/tmp/harbor-env-container-tests.lock"
# CI sets it where the engine must be there: a skip would hide a broken setup.
REQUIRED = os.environ.get("HARBOR_ENV_REQUIRE_CONTAINERS") == "1"

pytestmark = [
    pytest.mark.containers,
    pytest.mark.skipif(UNREADY is not None and not REQUIRED, reason=f"no container engine: {UNREADY}"),
]


@pytest.fixture(scope="module", autouse=True)
def engine_ready() -> Iterator[None]:
    """The engine is there, and this module has it to itself: the tests count what is left on
    it, so a second suite on the same machine waits (a lock on the host) instead of interfering."""
    assert UNREADY is None, f"HARBOR_ENV_REQUIRE_CONTAINERS=1 but {UNREADY}"
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def podman_config(work: Path, **harness):
    return env_config(work, include=NEEDS_IMAGE[:1], harness={"environment": {"type": "podman"}, **harness})


@pytest.fixture(scope="module")
def podman_served(tmp_path_factory: pytest.TempPathFactory, engine_ready: None) -> Iterator[tuple[str, Path]]:
    work = tmp_path_factory.mktemp("podman")
    with env_server_process(podman_config(work)) as (_, address):
        yield address, work


@pytest.fixture
async def client(podman_served: tuple[str, Path]) -> AsyncIterator[EnvClient]:
    async with connected(podman_served[0]) as client:
        yield client


@pytest.fixture
def nothing_left(podman_served: tuple[str, Path]) -> Iterator[None]:
    """After the test's episodes: no container, pod, network or volume, and no trial folder."""
    before = leftovers()
    yield
    assert leftovers() == before
    assert not any((podman_served[1] / "trials").glob("*")), "trial folders left"


async def run_all(client: EnvClient, server: FakeInferenceServer, tokenizer: Path, rows: list[dict]):
    episodes = await asyncio.gather(*(run_episode(client, server, tokenizer, row) for row in rows))
    return [episode.traces[0] for episode in episodes]


def assert_scored(trace, reward: float, what: str) -> None:
    assert trace.ok, f"{what}: errored: {[e.message[:300] for e in trace.errors]}"
    assert trace.reward == reward, f"{what}: reward {trace.reward}, expected {reward}"


# ---------------------------------------------------------------------------- tasks that need their image


async def test_tasks_that_need_their_image_score_1_when_solved_and_0_when_not(
    client: EnvClient, tokenizer: Path, nothing_left
) -> None:
    rows = [task_data(name) for name in NEEDS_IMAGE]
    solving = SolveEachTask(SAMPLE_TASKS, include=NEEDS_IMAGE, wait_until_done=True)
    with FakeInferenceServer(tokenizer, solving) as server:
        for name, trace in zip(NEEDS_IMAGE, await run_all(client, server, tokenizer, rows), strict=True):
            assert_scored(trace, 1.0, f"{name} solved")
            assert_tokens_match_the_model(trace, server)
    looking = ScriptedPolicy({}, default=script_then_finish("ls -la /app\n"))
    with FakeInferenceServer(tokenizer, looking) as server:
        for name, trace in zip(NEEDS_IMAGE, await run_all(client, server, tokenizer, rows), strict=True):
            assert_scored(trace, 0.0, f"{name} not solved")
            assert_tokens_match_the_model(trace, server)


# ---------------------------------------------------------------------------- the verifier phase

# The honest check never passes; an attack that works leaves a reward of 1. It flags a /tests
# that is a link, and sleeps after writing so that a surviving writer would overwrite it. It
# imports json in WORKDIR and runs the agent's /app/run.sh, if any, as tests of code do.
HONEST_TEST = """#!/bin/bash
python3 -c 'import json'
if [ -x /app/run.sh ]; then /app/run.sh; fi
if [ -L /tests ]; then echo 1; else echo 0; fi > /logs/verifier/reward.txt
sleep 1
"""
# The image puts WORKDIR on PYTHONPATH, as some do: the tests' Python must not see it.
PROBE_IMAGE = "FROM debian:bookworm-slim\nWORKDIR /app\nENV PYTHONPATH=/app\n"
FORGE = "echo '{\"reward\": 1}' > /logs/verifier/reward.json"
ATTACKS = {
    "lingering writer": f"cat > /tmp/w.sh <<'EOF'\nwhile :; do {FORGE} 2>/dev/null; sleep 0.01; done\nEOF\n"
    "nohup setsid bash /tmp/w.sh >/dev/null 2>&1 &",
    "planted reward.json": f"mkdir -p /logs/verifier && {FORGE}",
    "link in place of /tests": "mkdir -p /tmp/planted && rm -rf /tests && ln -s /tmp/planted /tests",
    # Every exec starts in WORKDIR (`exec -w`): the isolation runs from / and re-creates it.
    "removed WORKDIR": "cd / && rm -rf /app",
    "sitecustomize.py on the image's PYTHONPATH": f"cat > /app/sitecustomize.py <<'EOF'\nimport os\nos.system({FORGE!r})\nEOF",
    "json.py in WORKDIR": "echo \"import os; os.system('rm -rf /tests && ln -s /tmp /tests')\" > /app/json.py",
    # The verifier's timeout on a container that answers: scored 0 (a forfeit), not errored.
    "tests that hang on the agent's program": "printf '#!/bin/sh\\nsleep 600\\n' > /app/run.sh && chmod +x /app/run.sh",
    # PID 1 is `sleep` itself (the compose overlay): the kernel ignores these from inside.
    "killed keep-alive": 'kill -9 1; for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = sleep ] '
    "&& kill -9 ${p#/proc/}; done; true",
}


async def test_the_verifier_is_isolated_from_the_agent_in_a_container(
    client: EnvClient, tokenizer: Path, work: Path, nothing_left
) -> None:
    rows = {}
    for i, attack in enumerate(ATTACKS):
        marker = f"Probe {i}: {attack}."
        write_task(
            work / "tasks",
            f"attack-{i}",
            instruction=marker,
            test_sh=HONEST_TEST,
            dockerfile=PROBE_IMAGE,
            verifier_timeout=40,
        )
        rows[marker] = task_data(f"attack-{i}", work / "tasks")
    policy = ScriptedPolicy(
        {
            marker: [
                terminus_reply(run_script(ATTACKS[marker[marker.index(": ") + 2 : -1]])),
                *script_then_finish()[1:],
            ]
            for marker in rows
        }
    )
    with FakeInferenceServer(tokenizer, policy) as server:
        traces = await run_all(client, server, tokenizer, list(rows.values()))
    for attack, trace in zip(ATTACKS, traces, strict=True):
        assert_scored(trace, 0.0, attack)
        assert trace.metrics["harbor_verifier_forfeit"] == float(attack.startswith("tests that hang")), attack


# ---------------------------------------------------------------------------- failures are errors


async def test_a_failing_build_is_an_errored_episode(
    client: EnvClient, tokenizer: Path, work: Path, nothing_left
) -> None:
    dockerfile = "FROM debian:bookworm-slim\nRUN echo building && exit 7\nWORKDIR /app\n"
    write_task(work / "tasks", "bad-build", dockerfile=dockerfile)
    with FakeInferenceServer(tokenizer, ScriptedPolicy({})) as server:
        (trace,) = (await run_episode(client, server, tokenizer, task_data("bad-build", work / "tasks"))).traces
    assert not trace.ok, f"a build that failed was scored {trace.reward}"
    assert "bad-build" in trace.errors[-1].message or "build" in trace.errors[-1].message.lower()
    assert server.records == [], "the agent ran although its environment never started"


class KillContainerOnTurn:
    """A policy that, when asked for turn `turn`, removes the episode's container from outside
    (an engine failure), then keeps looking."""

    def __init__(self, task: str, turn: int = 1):
        self.task, self.turn, self.killed = task, turn, []

    def __call__(self, request: PolicyInput) -> str:
        if request.turn == self.turn and not self.killed:
            self.killed = [name for name in our_containers() if name.startswith(self.task)]
            podman("rm", "-f", *self.killed)
        return terminus_reply("ls\n", task_complete=request.turn > self.turn)


async def test_a_container_lost_to_the_engine_is_an_errored_episode(
    client: EnvClient, tokenizer: Path, work: Path, nothing_left
) -> None:
    write_task(work / "tasks", "engine-failure", instruction="Probe: the engine fails.")
    policy = KillContainerOnTurn("engine-failure")
    with FakeInferenceServer(tokenizer, policy) as server:
        (trace,) = (await run_episode(client, server, tokenizer, task_data("engine-failure", work / "tasks"))).traces
    assert policy.killed, "the episode's container was never found"
    assert not trace.ok, f"an episode whose container the engine lost was scored {trace.reward}"


# ---------------------------------------------------------------------------- a killed env server


class SignalOnFirstCall:
    """A policy that sets `called` on its first request and then keeps the agent waiting."""

    def __init__(self) -> None:
        self.called = threading.Event()

    def __call__(self, request: PolicyInput) -> str:
        self.called.set()
        return terminus_reply("sleep 30\n", duration=30)


async def test_containers_of_a_killed_env_server_are_reaped(
    tokenizer: Path, tmp_path: Path, podman_served: tuple[str, Path]
) -> None:
    before = leftovers()
    policy = SignalOnFirstCall()
    with FakeInferenceServer(tokenizer, policy) as server:
        with env_server_process(podman_config(tmp_path)) as (process, address):
            async with connected(address) as client:
                episode = asyncio.create_task(run_episode(client, server, tokenizer, task_data("version-sort")))
                assert await asyncio.to_thread(policy.called.wait, 300), "the agent never called the model"
                os.kill(process.pid, signal.SIGKILL)
                process.join(10)
                episode.cancel()
                await asyncio.gather(episode, return_exceptions=True)
    time.sleep(2)  # compose commands the server had started finish
    orphans = [name for name in our_containers() if name.startswith("version-sort")]
    assert orphans, "the killed env server's container is gone already: nothing was tested"
    reaper = subprocess.run(
        [sys.executable, "-m", "harbor_env.container_reaper", "podman"], capture_output=True, text=True, timeout=300
    )
    assert reaper.returncode == 0, reaper.stderr
    assert f"{len(orphans)} container(s) of dead owners reaped" in reaper.stdout, reaper.stdout
    assert leftovers() == before
