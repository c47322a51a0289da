"""SWE-style rows -> Harbor task folders, run end to end with real Trials in the local sandbox:
a tiny git repository with two bugs, their fix and a test patch."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest
from verifiers.v1.utils.loaders import load_taskset, resolve_env_config

from harbor_env.datasets.swe_source import main as convert
from harbor_env.datasets.swe_template import SweTemplateConfig, label_of_test, resolve_template
from harbor_env.errors import SweRowError
from harbor_env.testing.trials import reward_of, run_trial

CALC = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
TESTS = "import unittest\n\nfrom calc import add, mul, sub\n\n\nclass TestCalc(unittest.TestCase):\n    def test_sub(self):\n        self.assertEqual(sub(5, 3), 2)\n"
NEW_TESTS = (
    TESTS
    + "\n    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n    def test_mul(self):\n        self.assertEqual(mul(2, 3), 6)\n"
)
FIXED_ADD = CALC.replace("return a - b\n\n\ndef mul", "return a + b\n\n\ndef mul")
FIXED = FIXED_ADD.replace("return a + b\n\n\ndef sub", "return a * b\n\n\ndef sub")
CHEAT_TESTS = "import unittest\n\n\nclass TestCalc(unittest.TestCase):\n    def test_add(self):\n        pass\n\n    def test_mul(self):\n        pass\n\n    def test_sub(self):\n        pass\n"


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def diff(repo: Path, path: str, text: str) -> str:
    """The patch that turns `path` in `repo` into `text` (the work tree is left as it was)."""
    original = (repo / path).read_text()
    (repo / path).write_text(text)
    patch = git("diff", cwd=repo) + "\n"
    (repo / path).write_text(original)
    return patch


@pytest.fixture
def rows(tmp_path: Path) -> Path:
    """A JSONL data set: the gold fix, a fix of one bug of two, and a patch that rewrites the tests."""
    repo = tmp_path / "upstream" / "calc"
    repo.mkdir(parents=True)
    (repo / "calc.py").write_text(CALC)
    (repo / "test_calc.py").write_text(TESTS)
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", ".", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "buggy", cwd=repo)
    base = git("rev-parse", "HEAD", cwd=repo)
    # A later commit with the fix: the snapshot must not let the agent find it.
    (repo / "calc.py").write_text(FIXED)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "the fix", cwd=repo)
    git("checkout", "-q", base, cwd=repo)
    test_patch = diff(repo, "test_calc.py", NEW_TESTS)
    row = {
        "repo": "calc",
        "base_commit": base,
        "problem_statement": "add() subtracts and mul() adds; {they} should add and multiply.",
        "test_patch": test_patch,
        "FAIL_TO_PASS": json.dumps(["test_calc.TestCalc.test_add", "test_calc.TestCalc.test_mul"]),
        "PASS_TO_PASS": json.dumps(["test_calc.TestCalc.test_sub"]),
    }
    data = tmp_path / "rows.jsonl"
    patches = {
        "calc-1": diff(repo, "calc.py", FIXED),
        "calc-half": diff(repo, "calc.py", FIXED_ADD),
        "calc-cheat": diff(repo, "test_calc.py", CHEAT_TESTS),
    }
    data.write_text(
        "".join(json.dumps({**row, "instance_id": iid, "gold": patch}) + "\n" for iid, patch in patches.items())
    )
    return data


def swe_taskset(rows: Path, cache: Path, **extra) -> dict:
    return {
        "id": "harbor-env",
        "data_file": str(rows),
        "cache_dir": str(cache),
        "swe": {
            "columns": {"patch": "gold"},
            "repo_url": f"file://{rows.parent / 'upstream'}/{{repo}}",
            "test_command": "python3 -m unittest {test}",
            "agent_timeout_sec": 60,
            "verifier_timeout_sec": 60,
        },
        **extra,
    }


def load(taskset: dict) -> list:
    taskset_ = load_taskset(resolve_env_config({"taskset": taskset}).taskset)
    rows = list(taskset_)
    return rows, taskset_.summary


async def test_gold_scores_one_nop_zero_partial_fix_partial_credit(rows: Path, tmp_path: Path) -> None:
    tasks, summary = load(swe_taskset(rows, tmp_path / "cache"))
    assert [t.data.name for t in tasks] == ["calc-1", "calc-half", "calc-cheat"]
    assert summary.fetched == 3 and tasks[0].data.source == f"swe:{rows}"
    assert tasks[0].data.origin == f"{rows} row calc-1"
    assert "{they} should add" in tasks[0].data.prompt and "/testbed" in tasks[0].data.prompt
    task_dirs = {t.data.name: Path(t.data.task_dir) for t in tasks}
    snapshot = task_dirs["calc-1"] / "environment" / "repo"
    assert (
        git("log", "--all", "--format=%s", cwd=snapshot)
        == f"snapshot of {json.loads(rows.read_text().splitlines()[0])['base_commit']}"
    )
    work = tmp_path / "work"
    gold, nop, half, cheat = await asyncio.gather(
        run_trial(task_dirs["calc-1"], work, "oracle"),
        run_trial(task_dirs["calc-1"], work, "nop"),
        run_trial(task_dirs["calc-half"], work, "oracle"),
        run_trial(task_dirs["calc-cheat"], work, "oracle"),
    )
    assert reward_of(gold) == 1
    assert reward_of(nop) == 0
    assert reward_of(half) == 0.5
    assert half.verifier_result.rewards["fail_to_pass"] == 0.5 and half.verifier_result.rewards["pass_to_pass"] == 1
    assert reward_of(cheat) == 0  # rewriting the tests the test patch touches does not count
    again, summary = load(swe_taskset(rows, tmp_path / "cache"))
    assert summary.fetched == 0 and [t.data.task_dir for t in again] == [t.data.task_dir for t in tasks]


def test_the_command_writes_the_folders(rows: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    args = [
        "--data-file",
        str(rows),
        "--columns",
        '{"patch": "gold"}',
        "--include",
        "calc-1",
        "--out",
        str(out),
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    assert convert(args) == 2  # the default repo_url (GitHub) is not reachable offline: one-line error
    assert capsys.readouterr().err.count("\n") == 1
    # Rows with a prebuilt image need no clone.
    lines = [json.loads(line) | {"image": "ghcr.io/example/calc:1"} for line in rows.read_text().splitlines()]
    rows.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert convert(args) == 0
    task = out / "calc-1"
    assert (task / "environment" / "Dockerfile").read_text() == "FROM ghcr.io/example/calc:1\nWORKDIR /testbed\n"
    assert (
        task / "tests" / "fail_to_pass.txt"
    ).read_text() == "test_calc.TestCalc.test_add\ntest_calc.TestCalc.test_mul\n"
    assert (task / "tests" / "test_files.txt").read_text() == "test_calc.py\n"
    assert (task / "solution" / "gold.patch").read_text() == lines[0]["gold"]
    assert [p.name for p in out.iterdir()] == ["calc-1"]
    assert convert(args) == 2 and "--overwrite" in capsys.readouterr().err


def test_bad_rows_name_the_row_and_column(rows: Path, tmp_path: Path) -> None:
    with pytest.raises(SweRowError, match=r"rows.jsonl row 1: patch: Field required"):
        load({**swe_taskset(rows, tmp_path / "cache"), "swe": {}})
    with pytest.raises(SweRowError, match=r"row 1: no column 'fix' \(columns.patch\)"):
        load({**swe_taskset(rows, tmp_path / "cache"), "swe": {"columns": {"patch": "fix"}}})


def test_c2bug_preset_speaks_django() -> None:
    template = resolve_template(SweTemplateConfig(preset="c2bug"))
    assert (
        label_of_test("test_or (expressions.tests.CombinableTests)", template)
        == "expressions.tests.CombinableTests.test_or"
    )
    assert label_of_test("expressions.tests.X.test_y", template) == "expressions.tests.X.test_y"
    assert template.test_command.startswith("./tests/runtests.py") and template.workdir == "/testbed"
    assert resolve_template(SweTemplateConfig(preset="c2bug", workdir="/repo")).workdir == "/repo"
    with pytest.raises(SweRowError, match="unknown preset 'nope'"):
        resolve_template(SweTemplateConfig(preset="nope"))


def test_dry_run_and_eval_of_a_swe_source(rows: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """From a config file: the dry run names the data set and the cache; --eval runs real
    Terminus-2 episodes on a converted task (a policy that applies the fix scores 1)."""
    from harbor_env.testing.cli_runs import config_with, eval_argv, run_cli
    from harbor_env.testing.inference import FakeInferenceServer
    from harbor_env.testing.policies import ScriptedPolicy, run_script, script_then_finish
    from harbor_env.testing.tokenizer import build_test_tokenizer

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    taskset = swe_taskset(rows, tmp_path / "cache", include=["calc-1"])
    swe = taskset.pop("swe")
    lines = [f"{k} = {json.dumps(v)}" for k, v in taskset.items()]
    swe_lines = [f"{k} = {json.dumps(v)}" for k, v in swe.items() if k != "columns"]
    config = config_with(
        tmp_path,
        (
            "[orchestrator.train.source.env.taskset]\n" + "\n".join(lines) + "\n"
            "[orchestrator.train.source.env.taskset.swe]\n" + "\n".join(swe_lines) + '\ncolumns = { patch = "gold" }\n'
            '[orchestrator.train.source.env.agent.harness]\nid = "harbor-env"\n'
            '[orchestrator.train.source.env.agent.harness.environment]\ntype = "local"\n'
        ),
    )
    code, out, err = run_cli(capsys, "--config", config, "--dry-run")
    assert f"1 tasks from swe {rows}, in " in out and ": 1 fetched now, 0 cached" in out, out + err
    code, out, err = run_cli(capsys, "--config", config, "--dry-run")
    assert ": all cached" in out
    gold = json.loads(rows.read_text().splitlines()[0])["gold"]
    policy = ScriptedPolicy(
        {"should add and multiply": script_then_finish(run_script(f"cd /testbed\ngit apply <<'PATCH'\n{gold}PATCH\n"))}
    )
    with FakeInferenceServer(build_test_tokenizer(tmp_path / "tokenizer"), policy) as server:
        code, out, err = run_cli(capsys, *eval_argv(config, server, tmp_path / "jobs", "j"))
    assert code == 0, err
    (row,) = json.loads((tmp_path / "jobs" / "j" / "results.json").read_text())
    assert row["reward"] == 1.0, row


def test_a_hugging_face_layout_and_parquet(rows: Path, tmp_path: Path) -> None:
    """A local copy of a Hub data set repository: the split's parquet files are read."""
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow

    from harbor_env.datasets.cache import Selection
    from harbor_env.datasets.swe_source import read_selected_rows

    lines = [json.loads(line) for line in rows.read_text().splitlines()]
    hub = tmp_path / "hub-copy"
    (hub / "data").mkdir(parents=True)
    pq.write_table(pyarrow.Table.from_pylist(lines[:2]), hub / "data" / "test-00000-of-00001.parquet")
    pq.write_table(pyarrow.Table.from_pylist(lines[2:]), hub / "data" / "train-00000-of-00001.parquet")
    template = SweTemplateConfig(columns={"patch": "gold"})
    test = read_selected_rows(str(hub), None, "test", None, template, Selection())
    assert [r.instance_id for r in test] == ["calc-1", "calc-half"]
    assert test[0].FAIL_TO_PASS == ["test_calc.TestCalc.test_add", "test_calc.TestCalc.test_mul"]
    train = read_selected_rows(str(hub), None, "train", None, template, Selection(limit=1))
    assert [r.instance_id for r in train] == ["calc-cheat"]
    with pytest.raises(SweRowError, match="no files of split 'validation'"):
        read_selected_rows(str(hub), None, "validation", None, template, Selection())
