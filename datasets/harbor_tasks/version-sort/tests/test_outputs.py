"""sort_versions of the agent's /app/versions.py, run in a process of its own as `nobody`: the
agent's code never runs in the tests' process (where `os._exit(0)` on import would end pytest
with a pass, or a patch would change what the tests compare), and cannot read the expected
orders (test.sh makes /tests readable by root only). Only its answers reach the comparison."""

import json
import subprocess
import sys

import pytest

CASES = [
    (["1.10.0", "1.9.2", "1.2"], ["1.2", "1.9.2", "1.10.0"]),
    (["2.0.0", "2.0.0-rc1", "1.99"], ["1.99", "2.0.0-rc1", "2.0.0"]),
    (["1.2.0", "1.2", "1.1.10"], ["1.1.10", "1.2.0", "1.2"]),
    (["3.0.0-beta", "3.0.0-alpha", "3"], ["3.0.0-alpha", "3.0.0-beta", "3"]),
    (["10.0", "9.10", "9.9.9"], ["9.9.9", "9.10", "10.0"]),
]
# Loaded by path, in isolated mode (-I): nothing of /app shadows a module the loader imports.
SORT_EACH = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("agent_versions", "/app/versions.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps([module.sort_versions(list(given)) for given in json.load(sys.stdin)]))
"""


@pytest.fixture(scope="module")
def answers():
    run = subprocess.run(
        [sys.executable, "-I", "-c", SORT_EACH],
        input=json.dumps([given for given, _ in CASES]),
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        user="nobody",
        group="nogroup",
        extra_groups=[],
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", range(len(CASES)))
def test_release_order(case, answers):
    assert answers[case] == CASES[case][1]
