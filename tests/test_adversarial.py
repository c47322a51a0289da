"""An adversarial agent: scripted Terminus-2 policies that try to forge their reward or leave the
local sandbox, through the env-server wire prime-rl uses (real Harbor Trials, real tmux).

Every probe task's honest check fails (`/app/answer` is never 42), so an attack that works
scores 1.0. Each test asserts a reward of 0 (or a clean error), no write to the host, and that
nothing of the episode is left running or on disk. The escape attempts need root on the host
(as CI runs); without it they are skipped.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SAMPLE_TASKS, descendant_processes, write_task
from verifiers.v1.serve import EnvClient

from harbor_env.testing.configs import env_config, task_data
from harbor_env.testing.containers import image_mode_unready
from harbor_env.testing.env_server import env_server_process
from harbor_env.testing.episodes import run_episode
from harbor_env.testing.inference import FakeInferenceServer
from harbor_env.testing.policies import SOLVING, ScriptedPolicy, run_script, script_then_finish, terminus_reply

# The honest check, run with the python3 the tests trust. It sleeps at the end so that a writer
# that survived would overwrite the reward after the tests wrote it (reward.json wins).
HONEST_TEST = """#!/bin/bash
python3 -c 'import json' || exit 3
if [ "$(cat /app/answer 2>/dev/null)" = 42 ]; then echo 1; else echo 0; fi > /logs/verifier/reward.txt
sleep 0.3
"""
FORGE = "echo '{\"reward\": 1}' > /logs/verifier/reward.json"
LOOP = f"while :; do {FORGE} 2>/dev/null; sleep 0.01; done"
# Writer scripts first (no quoting inside quotes), then each way of leaving one running.
SCRIPTS = f"""cat > /tmp/w.sh <<'EOF'
{LOOP}
EOF
cat > /tmp/r.sh <<'EOF'
while :; do ( {FORGE} ) & sleep 0.005; done
EOF
cat > /tmp/g.sh <<'EOF'
while :; do echo garbage > /logs/verifier/reward.json; sleep 0.01; done
EOF
"""
LINGERING_WRITERS = {
    "nohup-setsid": "nohup setsid bash /tmp/w.sh >/dev/null 2>&1 &",
    "disowned-subshell": "( bash /tmp/w.sh & ) ; bash /tmp/w.sh & disown",
    "tmux-session": "tmux new-session -d -s writer 'bash /tmp/w.sh'",
    "respawning": "nohup bash /tmp/r.sh >/dev/null 2>&1 &",
    "unparsable-reward": "nohup setsid bash /tmp/g.sh >/dev/null 2>&1 &",
}
MODES = ["fresh", "shared"]
root_only_quota = pytest.mark.skipif(os.geteuid() != 0, reason="the storage quota needs root on the host")


IMAGE_MODE_UNREADY = image_mode_unready()


@pytest.fixture(scope="module", params=["host", "image"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, image_cache: Path) -> Iterator:
    """Every attack runs twice: the sandbox on the host's root, and on the task's image (image
    mode: an overlay of the image, the fresh verifier's WORKDIR carried through tar)."""
    if request.param == "image" and IMAGE_MODE_UNREADY and os.environ.get("HARBOR_ENV_REQUIRE_CONTAINERS") != "1":
        pytest.skip(f"no image tool: {IMAGE_MODE_UNREADY}")
    work = tmp_path_factory.mktemp(f"served-{request.param}")
    kwargs = {"sandbox_dir": str(work / "sandboxes"), "image_mode": request.param, "image_cache": str(image_cache)}
    config = env_config(
        work, include=["repair-config"], keep_trials=True, harness={"environment": {"type": "local", "kwargs": kwargs}}
    )
    with env_server_process(config) as (_, address):
        yield address, work


def probe_task(root: Path, name: str, mode: str, test_sh: str = HONEST_TEST, **kwargs) -> dict:
    """A task verified in `mode` (fresh or shared), checked by `test_sh`; its rollout row."""
    write_task(root, name, test_sh=test_sh, task_toml=f'[metadata]\nverifier_sandbox = "{mode}"\n', **kwargs)
    return task_data(name, root)


async def attack(client: EnvClient, tokenizer: Path, data: dict, *replies: str):
    """One episode of a policy that types `replies`' keystrokes, then says it is done."""
    policy = ScriptedPolicy({}, default=list(replies) + script_then_finish("ls\n")[1:])
    with FakeInferenceServer(tokenizer, policy) as server:
        (trace,) = (await run_episode(client, server, tokenizer, data)).traces
    return trace


@pytest.fixture
def nothing_left(served_work: Path):
    """Nothing of the episode may live on: no process, no sandbox folder."""
    before = descendant_processes()
    yield
    for _ in range(20):  # a stopping sandbox may take a moment
        if not (descendant_processes() - before) and not list((served_work / "sandboxes").iterdir()):
            break
        time.sleep(0.25)
    assert descendant_processes() - before == set()
    assert list((served_work / "sandboxes").iterdir()) == []


def assert_scored_zero(trace) -> None:
    assert trace.ok, [e.message for e in trace.errors]
    assert trace.reward == 0.0


# ---------------------------------------------------------------------------- reward forging


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("writer", sorted(LINGERING_WRITERS))
async def test_lingering_writers_cannot_forge_the_reward(
    writer: str, mode: str, client: EnvClient, tokenizer: Path, work: Path, nothing_left
) -> None:
    data = probe_task(work / "tasks", f"{writer}-{mode}", mode)
    trace = await attack(client, tokenizer, data, terminus_reply(run_script(SCRIPTS + LINGERING_WRITERS[writer])))
    assert_scored_zero(trace)


@pytest.mark.parametrize("mode", MODES)
async def test_a_loop_in_the_agents_own_pane_cannot_forge_the_reward(
    mode: str, client: EnvClient, tokenizer: Path, work: Path, nothing_left
) -> None:
    data = probe_task(work / "tasks", f"pane-{mode}", mode)
    trace = await attack(client, tokenizer, data, terminus_reply(LOOP + "\n"))
    assert_scored_zero(trace)


async def test_user_site_packages_cannot_reach_a_fresh_verifier(
    client: EnvClient, tokenizer: Path, work: Path, nothing_left
) -> None:
    """A `.pth` file runs in every Python the tests start; the fresh verifier sandbox holds only
    WORKDIR, so the agent's home (and its site-packages) is not there. (Shared mode cannot stop
    this: see the security table, docs/security.md.)"""
    plant = """site=$(python3 -m site --user-site) && mkdir -p "$site"
cat > "$site/zz-forge.pth" <<'EOF'
import os; open("/logs/verifier/reward.json", "w").write('{"reward": 1}')
EOF
python3 -c pass && cat /logs/verifier/reward.json && rm /logs/verifier/reward.json
"""
    data = probe_task(work / "tasks", "pth", "fresh")
    trace = await attack(client, tokenizer, data, terminus_reply(run_script(plant)))
    assert_scored_zero(trace)


async def test_the_tasks_solution_is_out_of_sight(client: EnvClient, tokenizer: Path, nothing_left) -> None:
    """The sample tasks live outside /tmp; their solution scripts must not be readable."""
    solution = SAMPLE_TASKS / "repair-config" / "solution" / "solve.sh"
    steal = f"cp {solution} /tmp/stolen.sh; bash /tmp/stolen.sh; ls {SAMPLE_TASKS} {Path.cwd()}"
    trace = await attack(client, tokenizer, task_data("repair-config"), terminus_reply(run_script(steal), duration=3))
    assert_scored_zero(trace)


@pytest.mark.parametrize("mode", MODES)
async def test_a_link_in_place_of_tests_cannot_redirect_harbors_upload(
    mode: str, client: EnvClient, tokenizer: Path, work: Path, nothing_left
) -> None:
    plant = "mkdir -p /logs/agent/planted; rm -rf /tests; ln -s /logs/agent/planted /tests; ls -la /tests"
    data = probe_task(work / "tasks", f"link-{mode}", mode)
    trace = await attack(client, tokenizer, data, terminus_reply(run_script(plant)))
    assert_scored_zero(trace)
    planted = Path(trace.info["harbor_trial_dir"]) / "agent" / "planted"
    assert planted.is_dir(), "the attack did not run"
    assert list(planted.iterdir()) == [], "Harbor's upload of the tests went through the agent's link"


async def test_a_huge_reward_file_errors_with_a_short_message(
    client: EnvClient, tokenizer: Path, work: Path, nothing_left
) -> None:
    """Code the tests run writes a reward.json holding a 30 MB string: the episode is errored
    (a reward must be a number), and the error that reaches the trace is a few kB, not the file."""
    huge = (
        "#!/bin/bash\n"
        'python3 -c \'import json; json.dump({"reward": "x" * 30_000_000}, open("/logs/verifier/reward.json", "w"))\'\n'
    )
    write_task(work / "tasks", "huge-reward", test_sh=huge)
    trace = await attack(client, tokenizer, task_data("huge-reward", work / "tasks"), terminus_reply("ls\n"))
    assert not trace.ok, f"a 30 MB string was scored {trace.reward}"
    messages = [e.message for e in trace.errors]
    assert sum(map(len, messages)) < 10_000, [len(m) for m in messages]
    assert len(str(trace.info)) < 10_000


# ---------------------------------------------------------------------------- a 0 must stay a 0


IMAGE_PATHS = 'FROM debian:bookworm-slim\nWORKDIR /app\nENV PYTHONPATH=/app PATH="/app/bin:$PATH"\n'
# PYTHONPATH=/app: a sitecustomize.py there runs in every Python the tests start. (PATH=/app/bin:
# the tests' login shell resets PATH here; tests/unit/test_verifier_paths.py covers PATH.)
SITECUSTOMIZE = f"cat > /app/sitecustomize.py <<'EOF'\nimport os\nos.system({FORGE!r})\nEOF"


@pytest.mark.parametrize("mode", MODES)
async def test_the_images_pythonpath_into_workdir_does_not_reach_the_tests(
    mode: str, client: EnvClient, tokenizer: Path, work: Path, nothing_left
) -> None:
    data = probe_task(work / "tasks", f"pythonpath-{mode}", mode, dockerfile=IMAGE_PATHS)
    trace = await attack(client, tokenizer, data, terminus_reply(run_script(SITECUSTOMIZE)))
    assert_scored_zero(trace)


async def test_a_task_can_keep_its_workdir_search_paths(
    client: EnvClient, tokenizer: Path, work: Path, nothing_left
) -> None:
    """The knob for tests that need them (`verifier_keeps_workdir_paths`): then the image's
    PYTHONPATH reaches the tests (and whatever the agent put in WORKDIR with it: the risk the
    task takes). The test imports a module of WORKDIR from another folder, through PYTHONPATH only."""
    imports = "#!/bin/bash\ncd /tmp && if python3 -c 'import marker'; then echo 1; else echo 0; fi > /logs/verifier/reward.txt\n"
    plant = terminus_reply(run_script("echo 'x = 1' > /app/marker.py"))
    for kept in (True, False):
        name = f"paths-kept-{kept}"
        toml = f'[metadata]\nverifier_sandbox = "shared"\nverifier_keeps_workdir_paths = {str(kept).lower()}\n'
        write_task(work / "tasks", name, test_sh=imports, task_toml=toml, dockerfile=IMAGE_PATHS)
        trace = await attack(client, tokenizer, task_data(name, work / "tasks"), plant)
        assert trace.ok and trace.reward == float(kept), (kept, trace.reward, [e.message[:200] for e in trace.errors])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("via", ["absolute", "relative", "chained"])
async def test_a_link_to_the_tests_own_answer_is_removed(
    via: str, mode: str, client: EnvClient, tokenizer: Path, work: Path, nothing_left
) -> None:
    """`/app/output.txt -> /tests/expected.txt`: the tests compare the file with itself. Links in
    WORKDIR that resolve into /tests or /logs/verifier are removed before the tests run."""
    compare = "#!/bin/bash\nif cmp -s /app/output.txt /tests/expected.txt; then echo 1; else echo 0; fi > /logs/verifier/reward.txt\n"
    links = {
        "absolute": "ln -s /tests/expected.txt /app/output.txt",
        "relative": "ln -s ../tests/expected.txt /app/output.txt",
        "chained": "mkdir -p /app/sub && ln -s /tests /app/sub/t && ln -s sub/t/expected.txt /app/output.txt",
    }
    name = f"answer-{via}-{mode}"
    data = probe_task(work / "tasks", name, mode, test_sh=compare, files={"tests/expected.txt": "a secret answer\n"})
    trace = await attack(client, tokenizer, data, terminus_reply(run_script(links[via])))
    assert_scored_zero(trace)


@pytest.mark.parametrize("mode", MODES)
async def test_a_script_the_tests_run_cannot_plant_the_reward_file_they_do_not_write(
    mode: str, client: EnvClient, tokenizer: Path, work: Path, nothing_left
) -> None:
    """The tests run a script of the agent's (as root) and write reward.txt; the script writes
    reward.json, which Harbor prefers. reward.json is named nowhere in the tests folder, so it is
    removed once the tests exit (and whatever they started is stopped)."""
    runs_agent_code = (
        "#!/bin/bash\nbash /app/check.sh\n"
        'if [ "$(cat /app/answer 2>/dev/null)" = 42 ]; then echo 1; else echo 0; fi > /logs/verifier/reward.txt\n'
    )
    name = f"runs-agent-code-{mode}"
    data = probe_task(work / "tasks", name, mode, test_sh=runs_agent_code)
    plant = f"cat > /app/check.sh <<'EOF'\n{FORGE}\nEOF"
    trace = await attack(client, tokenizer, data, terminus_reply(run_script(plant)))
    assert_scored_zero(trace)


def test_the_reward_file_the_tests_do_not_write(work: Path) -> None:
    from harbor_env.errors import InvalidInputError
    from harbor_env.verifier_isolation import unwritten_reward_file

    tests = work / "tests"
    tests.mkdir()
    (tests / "test.sh").write_text("echo 1 > /logs/verifier/reward.txt\n")
    assert unwritten_reward_file(tests, {}) == "reward.json"
    (tests / "helper.py").write_text("json.dump(r, open('/logs/verifier/reward.json', 'w'))\n")
    assert unwritten_reward_file(tests, {}) == ""  # both named: either may be written
    assert unwritten_reward_file(tests, {"reward_file": "reward.json"}) == "reward.txt"
    with pytest.raises(InvalidInputError, match="reward_file must be one of"):
        unwritten_reward_file(tests, {"reward_file": "score.txt"})


# Tests that run Python in WORKDIR (`cd /app && python3 -m unittest`): the current directory comes
# first on sys.path, so a module the agent adds there replaces the one of that name.
UNITTEST_IN_WORKDIR = (
    "#!/bin/bash\ncd /app\n"
    "if python3 -m unittest discover -s /tests -p 'test_*.py'; then echo 1; else echo 0; fi"
    " > /logs/verifier/reward.txt\n"
)
ANSWER_TEST = (
    "import json, unittest\n\n\nclass Answer(unittest.TestCase):\n    def test_answer(self):\n"
    "        self.assertEqual(open('/app/answer').read().strip(), json.dumps(42))\n"
)
SHADOWS = {
    "unittest.py": "echo 'raise SystemExit(0)' > /app/unittest.py",
    "json package": "mkdir -p /app/json && echo 'import os; os._exit(0)' > /app/json/__init__.py",
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shadow", sorted(SHADOWS))
async def test_a_module_in_workdir_cannot_replace_one_the_tests_import(
    shadow: str, mode: str, client: EnvClient, tokenizer: Path, work: Path, nothing_left
) -> None:
    """`/app/unittest.py` exiting 0 runs in place of unittest's main; `/app/json/` exits 0 when the
    tests import json. Modules the agent added to WORKDIR under a name the tests' Python finds
    elsewhere are removed before the tests run."""
    name = f"shadow-{shadow.replace(' ', '-').replace('.', '-')}-{mode}"
    data = probe_task(
        work / "tasks", name, mode, test_sh=UNITTEST_IN_WORKDIR, files={"tests/test_answer.py": ANSWER_TEST}
    )
    trace = await attack(client, tokenizer, data, terminus_reply(run_script(SHADOWS[shadow])))
    assert_scored_zero(trace)


async def test_modules_of_the_task_and_the_knob_keep_theirs(
    client: EnvClient, tokenizer: Path, work: Path, nothing_left
) -> None:
    """What stays: a module the task itself put in WORKDIR (here `/app/calendar.py`, from its
    Dockerfile), and, with `verifier_keeps_workdir_paths`, the agent's too. The tests pass only
    when both are there."""
    tests = {
        "tests/test_answer.py": (
            "import unittest\nimport calendar, statistics\n\n\nclass Answer(unittest.TestCase):\n"
            "    def test_answer(self):\n        self.assertEqual((calendar.OURS, statistics.OURS), (1, 2))\n"
        ),
        "environment/calendar.py": "OURS = 1\n",
    }
    dockerfile = "FROM debian:bookworm-slim\nWORKDIR /app\nCOPY calendar.py /app/calendar.py\n"
    plant = terminus_reply(run_script("echo 'OURS = 2' > /app/statistics.py"))
    for kept in (True, False):
        name = f"modules-kept-{kept}"
        toml = f'[metadata]\nverifier_sandbox = "fresh"\nverifier_keeps_workdir_paths = {str(kept).lower()}\n'
        write_task(
            work / "tasks", name, test_sh=UNITTEST_IN_WORKDIR, task_toml=toml, files=tests, dockerfile=dockerfile
        )
        trace = await attack(client, tokenizer, task_data(name, work / "tasks"), plant)
        assert trace.ok and trace.reward == float(kept), (kept, trace.reward, [e.message[:200] for e in trace.errors])


# The sample tasks whose tests use the agent's package: `os._exit(0)` on import ended the tests'
# interpreter with status 0 (unittest's pass) before they checked anything.
EXIT_ON_IMPORT = {
    "fix-python-bug": "/app/textstats/__init__.py",
    "refactor-rename": "/app/inventory/__init__.py",
}


@pytest.mark.parametrize("task", sorted(EXIT_ON_IMPORT))
async def test_a_package_that_exits_on_import_does_not_pass_the_sample_tasks(
    task: str, client: EnvClient, tokenizer: Path, nothing_left
) -> None:
    """The sample tasks' tests run the agent's package in a process of their own, as nobody, and
    compare only its answers (and it cannot read theirs)."""
    plant = f"printf 'import os\\nos._exit(0)\\n' > {EXIT_ON_IMPORT[task]}"
    trace = await attack(client, tokenizer, task_data(task), terminus_reply(run_script(plant)))
    assert_scored_zero(trace)


# The tests call git in the agent's repository, then check /app/answer; the agent's program, run
# by git as root, writes the answer.
GIT_IN_WORKDIR = (
    "#!/bin/bash\ncd /app && git status --short >/dev/null 2>&1; git diff >/dev/null 2>&1\n"
    "git -c user.name=t -c user.email=t@t commit -qm check --allow-empty >/dev/null 2>&1\n"
    'if [ "$(cat /app/answer 2>/dev/null)" = 42 ]; then echo 1; else echo 0; fi > /logs/verifier/reward.txt\n'
)
GIT_HOOKS = {
    "core.fsmonitor": "git config core.fsmonitor /app/forge.sh",
    "diff.external": "git config diff.external /app/forge.sh && echo x > tracked && git add tracked && echo y > tracked",
    "a pre-commit hook": "cp /app/forge.sh .git/hooks/pre-commit",
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("hook", sorted(GIT_HOOKS))
async def test_git_config_and_hooks_in_workdir_run_nothing(
    hook: str, mode: str, client: EnvClient, tokenizer: Path, work: Path, nothing_left
) -> None:
    """`core.fsmonitor`, `diff.external`, a hook: the tests' git calls would run the agent's
    program as root. WORKDIR's repositories keep only config keys that run nothing, and no hooks."""
    name = f"git-{hook.replace(' ', '-').replace('.', '-')}-{mode}"
    data = probe_task(work / "tasks", name, mode, test_sh=GIT_IN_WORKDIR)
    plant = (
        "cd /app && git init -q && printf '#!/bin/sh\\necho 42 > /app/answer\\n' > forge.sh && chmod +x forge.sh && "
        f"{GIT_HOOKS[hook]}"
    )
    trace = await attack(client, tokenizer, data, terminus_reply(run_script(plant)))
    assert_scored_zero(trace)


# The tests wait on a program of the agent's: one that never ends, one whose child keeps the
# tests' `$(...)` open after it exits.
HANGS = {
    "never ends": "sleep 600",
    "holds the pipe": "( sleep 600 & ) ; echo 41",
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("hang", sorted(HANGS))
async def test_tests_that_hang_on_the_agents_code_are_scored_not_errored(
    hang: str, mode: str, client: EnvClient, tokenizer: Path, work: Path, nothing_left
) -> None:
    """The verifier's timeout on a sandbox that still answers: the agent's program made the tests
    wait. Errored, GRPO would drop the 0 (and the policy learn to hang); it is scored 0, with
    `harbor_verifier_forfeit`, within the task's verifier timeout, and nothing is left running."""
    waits = (
        "#!/bin/bash\nout=$(bash /app/run.sh)\n"
        'if [ "$out" = 42 ]; then echo 1; else echo 0; fi > /logs/verifier/reward.txt\n'
    )
    name = f"hang-{hang.replace(' ', '-')}-{mode}"
    data = probe_task(work / "tasks", name, mode, test_sh=waits, verifier_timeout=8)
    plant = f"cat > /app/run.sh <<'EOF'\n{HANGS[hang]}\nEOF"
    started = time.monotonic()
    trace = await attack(client, tokenizer, data, terminus_reply(run_script(plant)))
    assert_scored_zero(trace)
    assert trace.metrics["harbor_verifier_forfeit"] == 1.0
    assert "the tests ran past the verifier's 8 s" in trace.info["harbor_verifier_forfeit"]
    assert 7 <= trace.metrics["harbor_verifier_sec"] < 12, trace.metrics
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("mode", MODES)
async def test_a_workdir_too_large_to_check_in_time_is_scored_not_errored(
    mode: str, client: EnvClient, tokenizer: Path, work: Path, nothing_left
) -> None:
    """The verifier's preparation (stopping the agent, checking WORKDIR's links, the fresh
    sandbox) ran outside Harbor's verifier timeout, unbounded. It now runs on the verifier's
    clock: 40,000 links (one `readlink` each) outlast a 6 s verifier, which scores 0."""
    links = """python3 -c 'import os; [os.symlink("x", f"/app/l{i}") for i in range(40000)]'"""
    data = probe_task(work / "tasks", f"many-links-{mode}", mode, verifier_timeout=6)
    trace = await attack(client, tokenizer, data, terminus_reply(run_script(links + " && echo made"), duration=6))
    assert_scored_zero(trace)
    assert "preparing the verifier ran past the verifier's 6 s" in trace.info["harbor_verifier_forfeit"]
    assert trace.metrics["harbor_trial_sec"] - trace.metrics["harbor_agent_sec"] < 20, trace.metrics


WORKDIR_WRECKERS = {
    "removed": "cd / && rm -rf /app",
    "a file": "cd / && rm -rf /app && echo 42 > /app",
    "a link to /proc": "cd / && rm -rf /app && ln -s /proc /app",
    "a dangling link": "cd / && rm -rf /app && ln -s /nowhere /app",
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wreck", sorted(WORKDIR_WRECKERS))
async def test_a_wrecked_workdir_is_scored_not_errored(
    wreck: str, mode: str, client: EnvClient, tokenizer: Path, work: Path, nothing_left
) -> None:
    """WORKDIR removed or replaced: the isolation, the tests and (fresh) the move of WORKDIR
    into the verifier's sandbox all started there, so the episode errored and GRPO dropped the
    agent's 0. The verifier now finds an empty WORKDIR where there is no directory."""
    data = probe_task(work / "tasks", f"wreck-{wreck.replace(' ', '-').replace('/', '')}-{mode}", mode)
    trace = await attack(client, tokenizer, data, terminus_reply(run_script(WORKDIR_WRECKERS[wreck])))
    assert_scored_zero(trace)


@pytest.mark.parametrize("mode", MODES)
async def test_a_fifo_where_the_tests_read_is_scored_not_errored(
    mode: str, client: EnvClient, tokenizer: Path, work: Path, nothing_left
) -> None:
    """A FIFO in place of the file the tests read blocks them until the verifier's timeout, an
    errored episode; special files in WORKDIR are removed before the tests run."""
    reads = "#!/bin/bash\ncat /app/answer >/dev/null 2>&1\necho 0 > /logs/verifier/reward.txt\n"
    name = f"fifo-{mode}"
    data = probe_task(work / "tasks", name, mode, test_sh=reads, verifier_timeout=15)
    trace = await attack(client, tokenizer, data, terminus_reply(run_script("mkfifo /app/answer")))
    assert_scored_zero(trace)


@pytest.mark.parametrize("mode", MODES)
async def test_a_tree_too_deep_for_pythons_rmtree_is_scored_and_removed(
    mode: str, client: EnvClient, tokenizer: Path, work: Path, nothing_left
) -> None:
    """3000 nested folders in WORKDIR: Python's recursive rmtree raises RecursionError past
    ~1000, which made the verifier's preparation (fresh) or the teardown fail, an errored
    episode GRPO drops; and left a folder the reaper then died on."""
    deep = 'python3 -c \'import os\nos.chdir("/app")\nfor _ in range(3000): os.mkdir("d"); os.chdir("d")\''
    data = probe_task(work / "tasks", f"deep-{mode}", mode)
    trace = await attack(client, tokenizer, data, terminus_reply(run_script(deep), duration=2))
    assert_scored_zero(trace)


@root_only_quota
@pytest.mark.parametrize("mode", MODES)
async def test_harbors_log_folders_count_against_the_storage_quota(
    mode: str, client: EnvClient, tokenizer: Path, work: Path, served_work: Path, nothing_left
) -> None:
    """Under `storage_mb`, 200 MB written into each of Harbor's log folders (bound from the host,
    they were outside the quota) and a file of 100 GB of holes in each: the writes fail, the
    episode is scored (the tests still fit: /tests and /logs/verifier have a room of their own),
    and the host's disk holds at most the quota's worth (Harbor copies the folders out through the
    sandbox, sparse files as their data; it had read the 100 GB file into memory)."""
    fill = "; ".join(
        f"dd if=/dev/zero of=/logs/{logs}/fill bs=1M count=200 2>/dev/null; truncate -s 100G /logs/{logs}/holes"
        for logs in ("agent", "artifacts", "verifier")
    )
    toml = f'[metadata]\nverifier_sandbox = "{mode}"\n[environment]\nstorage_mb = 64\n'
    write_task(work / "tasks", f"log-filler-{mode}", test_sh=HONEST_TEST, task_toml=toml)
    free_before = shutil.disk_usage(served_work).free
    trace = await attack(
        client, tokenizer, task_data(f"log-filler-{mode}", work / "tasks"), terminus_reply(run_script(fill))
    )
    assert_scored_zero(trace)
    # The trial keeps what Harbor copied out: at most the quota's worth, not 600 MB and 300 GB.
    assert free_before - shutil.disk_usage(served_work).free < 2 * 64 * 1024 * 1024


# ---------------------------------------------------------------------------- escapes (root on the host)

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="escapes need root on the host to mean anything")


@root_only
@pytest.mark.parametrize("mode", MODES)
async def test_mounts_remounts_and_cgroups_are_refused(
    mode: str, client: EnvClient, tokenizer: Path, work: Path, nothing_left
) -> None:
    """With every capability these forge the reward (a bind mount over the tests' python3 or
    /tests) or write to the host (a read-only host folder remounted, a cgroup v1 release_agent),
    or lift the limits (a fresh cgroup hierarchy). Each must fail."""
    marker = Path("/etc") / f"harbor-env-escape-{os.getpid()}-{mode}"
    escape = f"""
cat > /tmp/python3 <<'EOF'
#!/bin/sh
{FORGE}
EOF
chmod +x /tmp/python3
mount --bind /tmp/python3 /usr/bin/python3 && echo MOUNTED-PYTHON
mkdir -p /tmp/tests && cp /tmp/python3 /tmp/tests/test.sh && mount --bind /tmp/tests /tests && echo MOUNTED-TESTS
mount -o remount,rw,bind /etc && touch {marker} && echo REMOUNTED
printf '#!/bin/sh\\ntouch {marker}\\n' > /tmp/agent.sh; chmod +x /tmp/agent.sh
mkdir -p /tmp/cg && mount -t cgroup -o memory cgroup /tmp/cg && echo CGROUP-MOUNTED && echo /tmp/agent.sh > /tmp/cg/release_agent && echo RELEASE-AGENT
mkdir -p /tmp/cg2 && mount -t cgroup2 none /tmp/cg2 && echo $$ > /tmp/cg2/cgroup.procs && echo CGROUP-ESCAPED
mknod /tmp/disk b 8 0 && echo MKNOD
ls /sys/fs/cgroup >/dev/null && echo x > /sys/fs/cgroup/release_agent && echo SYSFS-WRITE
"""
    data = probe_task(work / "tasks", f"escape-{mode}", mode)
    try:
        trace = await attack(client, tokenizer, data, terminus_reply(run_script(escape), duration=2))
        assert_scored_zero(trace)
        trajectory = (Path(trace.info["harbor_trial_dir"]) / "agent" / "trajectory.json").read_text()
        assert "mount" in trajectory, "the attack never reached the terminal"
        for success in (
            "MOUNTED-PYTHON",
            "MOUNTED-TESTS",
            "REMOUNTED",
            "CGROUP-MOUNTED",
            "CGROUP-ESCAPED",
            "RELEASE-AGENT",
            "MKNOD",
            "SYSFS-WRITE",
        ):
            assert f"\\n{success}" not in trajectory and f"\n{success}" not in trajectory, success
        assert not marker.exists()
    finally:
        marker.unlink(missing_ok=True)


async def test_attacks_leave_the_env_server_serving(client: EnvClient, tokenizer: Path) -> None:
    """After every attack above, an honest episode on the same env server still scores."""
    with FakeInferenceServer(tokenizer, SOLVING) as server:
        (trace,) = (await run_episode(client, server, tokenizer)).traces
    assert trace.ok and trace.reward == 1.0, trace.errors
