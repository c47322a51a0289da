"""Harbor job folders -> prime-rl SFT data, on `--eval` jobs made here (real Terminus-2 episodes
against the fake model, local sandbox)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harbor_env.datasets.sft_export import main as export
from harbor_env.launcher import cli
from harbor_env.testing.cli_runs import config_with, eval_argv, local_source
from harbor_env.testing.inference import FakeInferenceServer
from harbor_env.testing.policies import ScriptedPolicy, run_script, script_then_finish
from harbor_env.testing.tasks import SAMPLE_TASKS
from harbor_env.testing.tokenizer import build_test_tokenizer

API_KEY = "sk-eval-secret-0123456789abcdef"
MARKER = "Repair the service configuration"
RAW_CONTENT = (
    "[orchestrator.train.source.env.agent.harness.agent]\nkwargs = { trajectory_config = { raw_content = true } }\n"
)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[dict]]]:
    """Two eval jobs of two trials each (repair-config solved, git-history not): `raw` with
    Terminus-2's raw replies in the trajectory, `plain` with its default trajectory; and the
    chat requests the model got in each."""
    tmp = tmp_path_factory.mktemp("sft")
    solve = (SAMPLE_TASKS / "repair-config" / "solution" / "solve.sh").read_text()
    policy = ScriptedPolicy({MARKER: script_then_finish(run_script(solve), duration=3)})
    tokenizer = build_test_tokenizer(tmp / "tokenizer")
    requests = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        mp.setenv("CUDA_VISIBLE_DEVICES", "")
        mp.setenv("EVAL_API_KEY", API_KEY)
        for job, extra in (("raw", RAW_CONTENT), ("plain", "")):
            config = config_with(
                tmp, local_source(SAMPLE_TASKS, extra, include=["repair-config", "git-history"]), f"{job}.toml"
            )
            with FakeInferenceServer(tokenizer, policy) as server:
                argv = eval_argv(
                    config,
                    server,
                    tmp / "jobs",
                    job,
                    "test-model",
                    "--concurrency",
                    "2",
                    "--api-key-var",
                    "EVAL_API_KEY",
                )
                assert cli.main([str(a) for a in argv]) == 0
                requests[job] = [r for r in server.chat_requests if MARKER in r["messages"][0]["content"]]
    return tmp / "jobs", requests


def read_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]


def test_raw_trajectories_give_exactly_the_chat_the_model_saw(jobs, tmp_path: Path, capsys) -> None:
    root, requests = jobs
    assert export([str(root / "raw"), "--out", str(tmp_path / "sft")]) == 0
    rows = {row["task"]: row for row in read_rows(tmp_path / "sft")}
    assert sorted(rows) == ["git-history", "repair-config"]
    assert rows["repair-config"]["reward"] == 1.0 and rows["git-history"]["reward"] == 0.0
    last = requests["raw"][-1]["messages"]
    messages = rows["repair-config"]["messages"]
    # The last request held the whole chat so far; the export adds the model's last reply.
    assert messages[:-1] == [{"role": m["role"], "content": m["content"]} for m in last]
    assert messages[-1]["role"] == "assistant" and json.loads(messages[-1]["content"])["task_complete"] is True
    assert [m["role"] for m in messages] == ["user", "assistant"] * (len(messages) // 2)
    assert "wrote 2 chats" in capsys.readouterr().out


def test_plain_trajectories_rebuild_the_replies(jobs, tmp_path: Path) -> None:
    root, requests = jobs
    assert export([str(root / "plain"), "--out", str(tmp_path / "sft"), "--min-reward", "1"]) == 0
    (row,) = read_rows(tmp_path / "sft")
    assert row["task"] == "repair-config" and row["job"] == "plain"
    sent = requests["plain"][-1]["messages"]
    messages = row["messages"]
    assert len(messages) == len(sent) + 1
    for got, want in zip(messages, sent, strict=False):
        assert got["role"] == want["role"]
        if want["role"] == "user":
            assert got["content"] == want["content"]
        else:  # the same reply, in Terminus-2's JSON format
            assert json.loads(got["content"]) == json.loads(want["content"])


def test_no_secret_reaches_the_data_and_filters_apply(jobs, tmp_path: Path, capsys, monkeypatch) -> None:
    root, _ = jobs
    assert export([str(root / "raw"), str(root / "plain"), "--out", str(tmp_path / "all")]) == 0
    text = (tmp_path / "all" / "train.jsonl").read_text()
    assert len(read_rows(tmp_path / "all")) == 4 and API_KEY not in text
    # A secret in the environment that a trajectory holds (an agent that printed it) is redacted.
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "Repair the service configuration")
    assert export([str(root / "raw"), "--out", str(tmp_path / "redacted")]) == 0
    redacted = (tmp_path / "redacted" / "train.jsonl").read_text()
    assert "Repair the service configuration" not in redacted and "[redacted]" in redacted
    assert "secrets redacted from 1 messages" in capsys.readouterr().out
    assert export([str(root / "raw"), "--out", str(tmp_path / "none"), "--min-reward", "2"]) == 2
    assert "no trial kept (2 trials: 0 errored, 0 without a chat" in capsys.readouterr().err
    assert export([str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


async def test_trials_without_a_trajectory_are_not_called_errored(tmp_path: Path, capsys) -> None:
    """The oracle writes no trajectory: its trial is scored, it just has no chat to learn from."""
    from harbor_env.testing.trials import reward_of, run_trial

    result = await run_trial(SAMPLE_TASKS / "repair-config", tmp_path / "work", "oracle")
    assert reward_of(result) == 1
    assert export([str(tmp_path / "work" / "trials"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no trial kept (1 trials: 0 errored, 1 without a chat (no agent trajectory, e.g. oracle or nop)" in err
