"""prime-rl's real orchestrator and env server train on harbor-env episodes, on CPU.

`bash scripts/test-prime-rl.sh` runs this with the Python of prime-rl's CPU environment
(`scripts/prime_rl_cpu/build.sh`); the main suite skips it (no prime-rl there). What runs:
prime-rl 559b4477's own `rl --dry-run` writes the per-process configs from
configs/harbor_cpu_check.toml; its `env-server` and `orchestrator` entry points run from them;
the inference server is the fake one (answering as prime-rl's vLLM server, LoRA adapters
included) playing a scripted Terminus-2 policy that solves the task in every other episode; the
trainer is a stub on prime-rl's own micro-batch receiver. One episode's second model call gets
an HTTP 500 (an infrastructure fault: the episode is errored, not scored). Every shipped step
is then checked token for token against what the fake model produced (`prime_rl_batches.py`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
from prime_rl_batches import check_step, format_table, read_episode_records, unpack
from prime_rl_stub_trainer import StubTrainer

from harbor_env.testing.inference import FakeInferenceServer, FaultChooser, Policy, PolicyInput
from harbor_env.testing.policies import RotatingPolicy, ScriptedPolicy, SolveEachTask
from harbor_env.testing.stepwise import EachLongTask
from harbor_env.testing.tasks import LONG_TASKS
from harbor_env.testing.tokenizer import build_test_model

HAVE_PRIME_RL = importlib.util.find_spec("prime_rl") is not None
pytestmark = [
    pytest.mark.prime_rl,
    pytest.mark.skipif(not HAVE_PRIME_RL, reason="needs prime-rl's CPU environment: bash scripts/test-prime-rl.sh"),
]

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "harbor_cpu_check.toml"
SUMMARIZE_CONFIG = REPO / "configs" / "harbor_cpu_summarize.toml"  # the long tasks, summarizing at 20k
TASKS = REPO / "datasets" / "harbor_tasks"
BIN = Path(sys.executable).parent  # prime-rl's console scripts live beside this Python
RUN_TIMEOUT_SEC = 480

PLANNED_REWARD = {"solve": 1.0, "fail": 0.0}  # every sample task: its solution scores 1, its starting state 0
# Sessions in order of their first model call: a group's rollouts start together, so group 1
# is sessions 0-3 = solve, fail, solve, fail. Session 2's second call fails (HTTP 500): its
# group trains on 1, 0, 0 (mean 1/3), not on 1, 0, 0, 0 (a reward 0 for the errored episode).
FAULTED_SESSION_INDEX = 2


def scripted_policy() -> RotatingPolicy:
    # "solve" types the task's oracle solution and finishes once it has run; "fail" looks around.
    return RotatingPolicy({"solve": SolveEachTask(TASKS, wait_until_done=True), "fail": ScriptedPolicy({})})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tail(path: Path, lines: int = 80) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def processes_with(marker: str) -> list[str]:
    """Processes (ours excepted) whose environment carries `marker`: everything the run started."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if int(pid) != os.getpid() and marker.encode() in Path(f"/proc/{pid}/environ").read_bytes():
                found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
    return found


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process's group (the env server's workers too), SIGKILL after 60 s."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)


@dataclass
class Run:
    """A finished run of prime-rl's orchestrator and env server on one of the CPU configs."""

    config: dict
    run_dir: Path
    trainer: StubTrainer
    server: FakeInferenceServer
    seconds: float
    marker: str  # in the environment of every process the run started
    sandboxes: Path
    trials: Path


def run_orchestrator(config_path: Path, tmp_path: Path, policy: Policy, fault_for: FaultChooser | None = None) -> Run:
    """prime-rl's own `rl --dry-run` writes the per-process configs of `config_path` (it would
    start torchrun and vLLM without it; only run-time values are added on its command line);
    its env server and orchestrator run from them against the fake model playing `policy`
    (`max_model_len` = the config's seq_len) and the stub trainer, until the orchestrator exits."""
    config = tomllib.loads(config_path.read_text())
    harness = config["orchestrator"]["train"]["source"][0]["env"]["agent"]["harness"]
    trials = REPO / harness["trials_dir"]  # relative paths resolve from the project root
    shutil.rmtree(trials, ignore_errors=True)
    sandboxes = tmp_path / "sandboxes"
    marker = f"HARBOR_ENV_CPU_CHECK={uuid.uuid4().hex}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "WANDB_MODE": "disabled",
        "HARBOR_ENV_SANDBOX_DIR": str(sandboxes),
        "VLLM_API_KEY": "sk-fake-vllm",
        marker.split("=")[0]: marker.split("=")[1],
    }
    model = build_test_model(tmp_path / "model")
    logs = tmp_path / "logs"
    logs.mkdir()
    with FakeInferenceServer(
        model, policy, model=str(model), max_model_len=config["seq_len"], fault_for=fault_for
    ) as server:
        dry_run = subprocess.run(
            [
                BIN / "rl",
                "@",
                config_path,
                "--dry-run",
                "--output-dir",
                tmp_path / "outputs",
                "--run.name",
                "check",
                "--model.name",
                model,
                "--orchestrator.model.client.base-url",
                server.base_url,
                "--orchestrator.env-server-base-port",
                str(free_port()),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert dry_run.returncode == 0, dry_run.stdout + dry_run.stderr
        run_dir = tmp_path / "outputs" / "check"
        configs = run_dir / "configs"
        adapter = config["trainer"]["model"]["lora"]
        trainer = StubTrainer(run_dir, config["max_steps"], adapter["rank"], adapter["alpha"]).start()
        started: list[subprocess.Popen] = []

        def launch(name: str, *args: object) -> subprocess.Popen:
            log = (logs / f"{name}.log").open("w")
            process = subprocess.Popen(
                [BIN / name, *args], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            started.append(process)
            return process

        started_at = time.monotonic()
        try:
            env_server = launch("env-server", "@", configs / "envs" / "train" / "harbor.json")
            orchestrator = launch("orchestrator", "@", configs / "orchestrator.json")
            while orchestrator.poll() is None and time.monotonic() - started_at < RUN_TIMEOUT_SEC:
                assert env_server.poll() is None, f"the env server exited:\n{tail(logs / 'env-server.log')}"
                time.sleep(1)
            run_sec = time.monotonic() - started_at
        finally:
            for process in reversed(started):
                stop(process)
            trainer.stop()
        assert orchestrator.returncode == 0, (
            f"orchestrator: exit {orchestrator.returncode} after {run_sec:.0f} s\n{tail(logs / 'orchestrator.log')}\n"
            f"--- env server\n{tail(logs / 'env-server.log', 40)}"
        )
    assert trainer.error is None, f"stub trainer: {trainer.error!r}"
    assert sorted(trainer.batches) == list(range(1, config["max_steps"] + 1)), (
        f"steps received: {sorted(trainer.batches)}"
    )
    return Run(config, run_dir, trainer, server, run_sec, marker, sandboxes, trials)


def assert_nothing_left_behind(run: Run) -> None:
    deadline = time.monotonic() + 15
    while processes_with(run.marker) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not processes_with(run.marker), f"processes left behind: {processes_with(run.marker)}"
    # Both folders exist (so the run used them) and are empty.
    assert run.sandboxes.is_dir() and not any(run.sandboxes.iterdir()), (
        f"sandboxes left: {list(run.sandboxes.glob('*'))}"
    )
    assert run.trials.is_dir() and not any(run.trials.iterdir()), f"trial folders left: {list(run.trials.glob('*'))}"
    shutil.rmtree(run.trials, ignore_errors=True)
    with contextlib.suppress(OSError):
        run.trials.parent.rmdir()  # outputs/harbor-cpu-..., when nothing else is in it


@pytest.mark.timeout(RUN_TIMEOUT_SEC + 300)
def test_orchestrator_trains_on_harbor_episodes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    policy = scripted_policy()

    def fault_for(request: PolicyInput) -> str | None:
        return (
            "http_500" if request.turn == 1 and policy.index_of(request.session_id) == FAULTED_SESSION_INDEX else None
        )

    run = run_orchestrator(CONFIG, tmp_path, policy, fault_for)
    config, run_dir, trainer, server, run_sec = run.config, run.run_dir, run.trainer, run.server, run.seconds
    max_steps = config["max_steps"]
    lora = config["orchestrator"]["model"]["lora"]["name"]

    # ---------------------------------------------------------------- the batches
    records = read_episode_records(run_dir)
    everything = [record for step in sorted(records) for record in records[step]]
    calls = defaultdict(list)
    for call in server.records:
        calls[call.session_id].append(call)
    planned = {session: PLANNED_REWARD[plan] for session, plan in policy.assigned.items()}
    errored = {request.session_id for request, _ in server.faulted}
    assert len(errored) == 1, f"the fault hit {len(errored)} sessions, expected one"

    rows = [
        check_step(
            step, unpack(step, trainer.batches[step]), everything, records.get(step, []), calls, planned, errored
        )
        for step in range(1, max_steps + 1)
    ]

    # The errored episode's group was trained on (so its mean was checked without it).
    (faulted,) = errored
    by_session = {record.session_id: record for record in everything}
    assert faulted in by_session and not by_session[faulted].ok, "the faulted episode was not logged as errored"
    shipped = {session for row in rows for session in row.sessions}
    group = {r.session_id for r in everything if r.group_id == by_session[faulted].group_id}
    assert shipped & group, "the faulted episode's group shipped nothing: its mean was never checked"

    # ---------------------------------------------------------------- LoRA
    loads = [call.body for call in server.admin_calls if call.path.endswith("load_lora_adapter")]
    versions = [int(Path(body["lora_path"]).name.removeprefix("step_")) for body in loads]
    assert loads and all(body["lora_name"] == lora for body in loads), f"adapters loaded: {loads}"
    assert all(Path(body["lora_path"]).parent == run_dir / "broadcasts" for body in loads), loads
    assert versions == sorted(set(versions)) and versions[0] == 0 and versions[-1] == max_steps - 1, versions
    assert {call.model for call in server.records} == {lora}, "a model call did not name the LoRA adapter"
    with capsys.disabled():
        print(
            f"\nprime-rl orchestrator on harbor-env: {max_steps} steps in {run_sec:.0f} s (processes started to "
            f"orchestrator exit); adapter {lora} loaded for policy versions {versions}\n{format_table(rows)}"
        )
    assert all(row.samples > 0 for row in rows), "a step shipped no samples"

    # ---------------------------------------------------------------- nothing left behind
    assert_nothing_left_behind(run)


@pytest.mark.timeout(RUN_TIMEOUT_SEC + 300)
def test_orchestrator_trains_on_summarized_episodes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Terminus-2 summarizes the long tasks' episodes ahead of the fake server's 20k window (read
    from its /v1/models); each episode reaches the trainer as several samples, one per chain of
    calls (the first stretch with its summary and answers, each questions call, each continued
    chat), every one exact and with the episode's advantage, none left out or shipped twice."""
    policy = RotatingPolicy({"solve": EachLongTask(LONG_TASKS), "fail": EachLongTask(LONG_TASKS, share=0.5)})
    run = run_orchestrator(SUMMARIZE_CONFIG, tmp_path, policy)
    records = read_episode_records(run.run_dir)
    everything = [record for step in sorted(records) for record in records[step]]
    calls = defaultdict(list)
    for call in run.server.records:
        calls[call.session_id].append(call)
    planned = {session: PLANNED_REWARD[plan] for session, plan in policy.assigned.items()}
    rows = [
        check_step(
            step,
            unpack(step, run.trainer.batches[step]),
            everything,
            records.get(step, []),
            calls,
            planned,
            set(),
            one_sample_per_episode=False,
        )
        for step in range(1, run.config["max_steps"] + 1)
    ]
    shipped = defaultdict(int)
    for row in rows:
        for session in row.sessions:
            shipped[session] += 1
    assert shipped and all(samples >= 3 for samples in shipped.values()), f"samples per episode: {dict(shipped)}"
    window = run.config["seq_len"]
    assert all(len(c.prompt_ids) + len(c.completion_ids) <= window for c in run.server.records)
    per_episode = [
        (len(calls[s]), n, sum(len(c.completion_ids) for c in calls[s]), sum(len(c.prompt_ids) for c in calls[s]))
        for s, n in shipped.items()
    ]
    with capsys.disabled():
        print(
            f"\nprime-rl orchestrator on summarizing harbor-env episodes: {len(rows)} steps in {run.seconds:.0f} s; "
            f"per shipped episode (model calls, samples, sampled tokens, prompt tokens): {sorted(per_episode)}"
            f"\n{format_table(rows)}"
        )
    assert_nothing_left_behind(run)
