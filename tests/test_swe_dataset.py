"""SWE-style rows -> Harbor task folders, run end to end with real Trials in the local sandbox:
a tiny git repository with two bugs, their fix and a test patch."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from verifiers.v1.utils.loaders import load_taskset, resolve_env_config

from harbor_env.datasets.swe_source import main as convert
from harbor_env.errors import SweRowError
from harbor_env.testing.trials import reward_of, run_trial

CALC = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
TESTS = (
    "import unittest\n\nfrom calc import add, mul, sub\n\n\nclass TestCalc(unittest.TestCase):\n"
    "    def test_sub(self):\n        self.assertEqual(sub(5, 3), 2)\n\n"
    '    def test_sub_zero(self):\n        """sub() of equal numbers is 0.\n\n        More text.\n        """\n'
    "        self.assertEqual(sub(4, 4), 0)\n"
)
NEW_TESTS = (
    TESTS
    + "\n    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n    def test_mul(self):\n"
    + '        """mul() multiplies (ticket #2)."""\n        self.assertEqual(mul(2, 3), 6)\n'
)
# The names as SWE-bench writes them for a unittest runner (Django's rows): Python 3.11+'s
# `method (module.Class.method)`, a test with a docstring, and Python < 3.11's `method (module.Class)`.
FAIL_TO_PASS = ["test_add (test_calc.TestCalc.test_add)", "mul() multiplies (ticket #2). (test_calc.TestCalc.test_mul)"]
# ... and, as SWE-bench's Django parser keeps a test with a docstring, its first line alone.
PASS_TO_PASS = ["test_sub (test_calc.TestCalc)", "sub() of equal numbers is 0."]
LABELS = "test_calc.TestCalc.test_add\ntest_calc.TestCalc.test_mul\n"
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
        "FAIL_TO_PASS": json.dumps(FAIL_TO_PASS),
        "PASS_TO_PASS": json.dumps(PASS_TO_PASS),
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


def swe_taskset(rows: Path, cache: Path, swe: dict | None = None, **extra) -> dict:
    """A taskset over `rows`, its repository in `upstream/` beside the file; `swe` overrides template keys."""
    return {
        "id": "harbor-env",
        "data_file": str(rows),
        "cache_dir": str(cache),
        "swe": {
            "columns": {"patch": "gold"},
            "repo_url": f"{rows.parent / 'upstream'}/{{repo}}",
            "test_command": "python3 -m unittest {test}",
            "test_id_style": "unittest",
            "agent_timeout_sec": 60,
            "verifier_timeout_sec": 60,
            **(swe or {}),
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
    """The example of docs/data.md: template options on the command line, a local repository path."""
    out = tmp_path / "out"
    args = ["--data-file", str(rows), "--columns", '{"patch": "gold"}', "--include", "calc-1", "--out", str(out)]
    args += ["--cache-dir", str(tmp_path / "cache")]
    assert convert(args) == 2  # no test command: one line that says which option
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--test-command" in err
    args += ["--test-command", "python3 -m unittest {test}", "--test-id-style", "unittest"]
    assert convert(args) == 1  # the default repo_url (GitHub) is not reachable offline: the row is skipped
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(calc-1): git clone failed" in err and "https://github.com/calc.git" in err
    # docs/data.md's local spelling: a path (relative to the working directory) as the repository.
    args += ["--repo-url", f"{os.path.relpath(rows.parent / 'upstream')}/{{repo}}", "--workdir", "/work/calc"]
    assert convert(args) == 0, capsys.readouterr().err
    task = out / "calc-1"
    assert (task / "environment" / "Dockerfile").read_text().endswith("COPY repo/ /work/calc/\nWORKDIR /work/calc\n")
    assert (task / "tests" / "fail_to_pass.txt").read_text() == LABELS
    assert (task / "tests" / "pass_to_pass.txt").read_text() == (
        "test_calc.TestCalc.test_sub\ntest_calc.TestCalc.test_sub_zero\n"
    )
    assert 'python3 -m unittest "$test"' in (task / "tests" / "test.sh").read_text()
    assert (task / "tests" / "test_files.txt").read_text() == "test_calc.py\n"
    assert convert(args) == 1 and "--overwrite" in capsys.readouterr().err
    assert convert([*args, "--refresh"]) == 0  # fetches the clone again, replaces the folder
    # A row at a commit newer than the cached clone: the clone is fetched again.
    upstream = rows.parent / "upstream" / "calc"
    git("checkout", "-q", "-b", "later", cwd=upstream)
    (upstream / "NOTES").write_text("later\n")
    git("add", "NOTES", cwd=upstream)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "later", cwd=upstream)
    later = git("rev-parse", "HEAD", cwd=upstream)
    lines = [json.loads(line) | {"base_commit": later} for line in rows.read_text().splitlines()]
    rows.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert convert([*args, "--overwrite"]) == 0, capsys.readouterr().err
    assert git("log", "--format=%s", cwd=task / "environment" / "repo") == f"snapshot of {later}"
    # Rows with a prebuilt image are not snapshotted; their patches are still checked.
    lines = [json.loads(line) | {"image": "ghcr.io/example/calc:1"} for line in rows.read_text().splitlines()]
    rows.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert convert([*args, "--overwrite"]) == 0
    assert (task / "environment" / "Dockerfile").read_text() == "FROM ghcr.io/example/calc:1\nWORKDIR /work/calc\n"
    assert (task / "solution" / "gold.patch").read_text() == lines[0]["gold"]
    assert [p.name for p in out.iterdir()] == ["calc-1"]


def test_the_docs_local_example_runs_as_written(rows: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """The command of docs/data.md for a local data set, run as written where it says: rows.jsonl
    in SWE-bench's columns, the repository checked out in ./calc."""
    docs = (Path(__file__).resolve().parents[1] / "docs" / "data.md").read_text()
    command = docs[docs.index("uv run python -m harbor_env.datasets.swe_source --data-file rows.jsonl") :]
    command = command[: command.index("\n", command.index("--out"))].replace("\\\n", " ")
    argv = shlex.split(command)
    assert argv[:5] == ["uv", "run", "python", "-m", "harbor_env.datasets.swe_source"]
    here = rows.parent / "upstream"
    lines = [json.loads(line) for line in rows.read_text().splitlines()]
    (here / "rows.jsonl").write_text("".join(json.dumps({**r, "patch": r.pop("gold")}) + "\n" for r in lines))
    monkeypatch.chdir(here)
    monkeypatch.setenv("HARBOR_ENV_CACHE", str(tmp_path / "cache"))
    assert convert(argv[5:]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in (here / "tasks" / "calc").iterdir()) == ["calc-1", "calc-cheat", "calc-half"]
    assert (here / "tasks" / "calc" / "calc-1" / "tests" / "fail_to_pass.txt").read_text() == LABELS


def test_tests_named_by_a_docstring_alone_are_found_in_the_source(tmp_path: Path) -> None:
    """Django's layout: test modules under tests/, labelled from there; the test patch's new
    tests are found too; a line two tests share names neither."""
    from harbor_env.datasets.swe_docstrings import docstring_labels

    repo = tmp_path / "django"
    (repo / "tests" / "migrations").mkdir(parents=True)
    module = repo / "tests" / "migrations" / "test_commands.py"
    shared = '        """Shared line."""\n        pass\n'
    module.write_text(
        "import unittest\n\n\nclass SquashTests(unittest.TestCase):\n"
        '    def test_squashed_name(self):\n        """\n        --squashed-name specifies the name.\n        """\n'
        f"    def test_one(self):\n{shared}\n\nclass OtherTests(unittest.TestCase):\n    def test_two(self):\n{shared}"
    )
    git("init", "-q", cwd=repo)
    git("add", ".", cwd=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "base", cwd=repo)
    base = git("rev-parse", "HEAD", cwd=repo)
    added = module.read_text() + '\n    def test_added(self):\n        """Added by the test patch."""\n'
    test_patch = diff(repo, "tests/migrations/test_commands.py", added)
    lines = ["--squashed-name specifies the name.", "Added by the test patch.", "Shared line.", "Nowhere."]
    assert docstring_labels(repo, base, test_patch, lines, "tests") == {
        "--squashed-name specifies the name.": "migrations.test_commands.SquashTests.test_squashed_name",
        "Added by the test patch.": "migrations.test_commands.OtherTests.test_added",
    }
    assert docstring_labels(repo, base, test_patch, lines[:1], "")[lines[0]].startswith("tests.migrations.")
    assert docstring_labels(repo, base, "not a patch", lines, "tests") == {}


def test_the_oracle_check_removes_rows_their_gold_patch_does_not_solve(
    rows: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    swe = swe_taskset(rows, tmp_path)["swe"]
    out = tmp_path / "out"
    args = ["--data-file", str(rows), "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--oracle"]
    args += ["--columns", '{"patch": "gold"}', "--repo-url", swe["repo_url"], "--test-command", swe["test_command"]]
    assert convert([*args, "--test-id-style", "unittest"]) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"skipped {rows}: rows.jsonl row 2 (calc-half): the oracle (gold patch) scored 0.5 "
        "(fail_to_pass 0.5, pass_to_pass 1.0, test_patch_applied 1), not 1",
        f"skipped {rows}: rows.jsonl row 3 (calc-cheat): the oracle (gold patch) scored 0.0 "
        "(fail_to_pass 0.0, pass_to_pass 1.0, test_patch_applied 1), not 1",
    ], captured.err
    assert "wrote 1 task folders" in captured.out and [p.name for p in out.iterdir()] == ["calc-1"]


def bad_rows(rows: Path) -> Path:
    """`rows` with one row of each kind that cannot make a working task, in SWE-bench's columns."""
    good = json.loads(rows.read_text().splitlines()[0])
    gold, test_patch = good["gold"], good["test_patch"]
    bad = {
        "bad-gold": {"gold": gold.replace("-    return a - b", "-    return a % b", 1)},
        "bad-test-patch": {"test_patch": test_patch.replace("sub(4, 4)", "sub(9, 9)")},
        "bad-commit": {"base_commit": "0" * 40},
        "bad-field": {"FAIL_TO_PASS": "[]"},
        "bad-names": {"FAIL_TO_PASS": json.dumps(["A docstring alone, as SWE-bench's parser kept it"])},
    }
    data = rows.with_name("bad-rows.jsonl")
    lines = [good] + [{**good, "instance_id": iid, **change} for iid, change in bad.items()]
    data.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return data


BAD_ROW_REASONS = {
    "bad-gold": "the gold patch does not apply at ",
    "bad-test-patch": "the test patch does not apply at ",
    "bad-commit": f"base_commit {'0' * 40} is not in ",
    "bad-field": "FAIL_TO_PASS: List should have at least 1 item",
    "bad-names": '1 test names give no runnable unittest label: FAIL_TO_PASS "A docstring alone',
}


def test_bad_rows_are_reported_and_skipped_by_the_command(
    rows: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = bad_rows(rows)
    swe = swe_taskset(rows, tmp_path)["swe"]
    args = ["--data-file", str(data), "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    for key in ("repo_url", "test_command", "test_id_style"):
        args += [f"--{key.replace('_', '-')}", swe[key]]
    assert convert([*args, "--columns", '{"patch": "gold"}']) == 1
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == len(BAD_ROW_REASONS), captured.err
    for line, (iid, reason) in zip(lines, BAD_ROW_REASONS.items(), strict=True):
        assert line.startswith(f"skipped {data}: bad-rows.jsonl row ") and f"({iid}): {reason}" in line, line
    assert "wrote 1 task folders" in captured.out and "skipped 5 bad rows" in captured.out
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["calc-1"]
    # --strict: the first bad row stops the command, with that row's line.
    out = tmp_path / "strict"
    args[args.index("--out") + 1] = str(out)
    assert convert([*args, "--columns", '{"patch": "gold"}', "--strict"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(bad-gold): the gold patch does not apply" in err
    # A mapping to a column no row has: one line for the data set; one that some rows lack: those rows.
    assert convert([*args, "--columns", '{"patch": "fix"}']) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no row has column 'fix' (columns.patch); columns are [" in err
    data.write_text(data.read_text().replace('"gold"', '"fix"', 1))
    args[args.index("--out") + 1] = str(tmp_path / "some")
    assert convert([*args, "--columns", '{"patch": "fix"}']) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 5 and err.count("no column 'fix' (columns.patch)") == 5 and "(calc-1)" not in err


def test_bad_rows_are_skipped_by_the_taskset_source(rows: Path, tmp_path: Path, caplog) -> None:
    data = bad_rows(rows)
    with caplog.at_level(logging.WARNING, logger="harbor_env.datasets.swe_source"):
        tasks, summary = load(swe_taskset(data, tmp_path / "cache", limit=2))
    assert [t.data.name for t in tasks] == ["calc-1"] and summary.tasks == 1
    warnings = [r.getMessage() for r in caplog.records]
    assert [w.split(" (", 1)[1].split(")", 1)[0] for w in warnings[:-1]] == list(BAD_ROW_REASONS)
    assert warnings[-1] == f"{data}: skipped 5 of 6 rows (reasons above)"
    with pytest.raises(SweRowError, match=r"bad-rows.jsonl row 2 \(bad-gold\): the gold patch does not apply"):
        load(swe_taskset(data, tmp_path / "cache", swe={"strict": True}))
    with pytest.raises(SweRowError, match=r"every selected row was skipped \(6\).*row 1 \(calc-1\): patch: Field"):
        load(swe_taskset(data, tmp_path / "cache", swe={"columns": {}}))


def test_the_cache_follows_the_converter(rows: Path, tmp_path: Path, monkeypatch) -> None:
    """Converted tasks are cached per data set, template and converter code: an edit to the
    converter converts again; `refresh` converts again without one."""
    from harbor_env.datasets import swe_source

    converter = tmp_path / "converter.py"
    converter.write_text(swe_source.swe_template.TEST_SH)
    modules = [*swe_source.CONVERTER_MODULES, SimpleNamespace(__file__=str(converter))]
    monkeypatch.setattr(swe_source, "CONVERTER_MODULES", modules)
    taskset = swe_taskset(rows, tmp_path / "cache", include=["calc-1"])
    first, summary = load(taskset)
    assert summary.fetched == 1
    assert load(taskset)[1].fetched == 0
    converter.write_text(swe_source.swe_template.TEST_SH.replace("f * p", "f"))  # a changed reward rule
    second, summary = load(taskset)
    assert summary.fetched == 1 and second[0].data.task_dir != first[0].data.task_dir
    assert load({**taskset, "refresh": True})[1].fetched == 1
    assert load(taskset)[1].fetched == 0


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
    from harbor_env.datasets.swe_rows import parse_row
    from harbor_env.datasets.swe_source import read_selected_rows

    lines = [json.loads(line) for line in rows.read_text().splitlines()]
    hub = tmp_path / "hub-copy"
    (hub / "data").mkdir(parents=True)
    pq.write_table(pyarrow.Table.from_pylist(lines[:2]), hub / "data" / "test-00000-of-00001.parquet")
    pq.write_table(pyarrow.Table.from_pylist(lines[2:]), hub / "data" / "train-00000-of-00001.parquet")
    test = read_selected_rows(str(hub), None, "test", None, {}, Selection())
    assert [r.instance_id({}) for r in test] == ["calc-1", "calc-half"]
    assert parse_row(test[0], {"patch": "gold"}).FAIL_TO_PASS == FAIL_TO_PASS
    train = read_selected_rows(str(hub), None, "train", None, {}, Selection(include=["calc-c*"]))
    assert [r.where for r in train] == ["train-00000-of-00001.parquet row 1"]
    with pytest.raises(SweRowError, match="no files of split 'validation'"):
        read_selected_rows(str(hub), None, "validation", None, {}, Selection())
