"""sort_versions of the agent's /app/versions.py, loaded by path (never by putting /app on
sys.path, where a file of the agent's could shadow a module the tests import)."""

import importlib.util

import pytest


def load():
    spec = importlib.util.spec_from_file_location("agent_versions", "/app/versions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.sort_versions


@pytest.mark.parametrize(
    "given, expected",
    [
        (["1.10.0", "1.9.2", "1.2"], ["1.2", "1.9.2", "1.10.0"]),
        (["2.0.0", "2.0.0-rc1", "1.99"], ["1.99", "2.0.0-rc1", "2.0.0"]),
        (["1.2.0", "1.2", "1.1.10"], ["1.1.10", "1.2.0", "1.2"]),
        (["3.0.0-beta", "3.0.0-alpha", "3"], ["3.0.0-alpha", "3.0.0-beta", "3"]),
        (["10.0", "9.10", "9.9.9"], ["9.9.9", "9.10", "10.0"]),
    ],
)
def test_release_order(given, expected):
    assert load()(list(given)) == expected
