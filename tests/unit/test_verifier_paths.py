"""Which search-path entries the verifier's commands lose: WORKDIR's, and relative ones."""

from harbor_env.verifier_isolation import search_paths_for_the_verifier


def test_workdir_entries_and_relative_ones_go() -> None:
    paths = {
        "PATH": "/app/.venv/bin:/usr/local/bin:/app:/usr/bin:.:/application/bin",
        "PYTHONPATH": "/app:/opt/lib::/app/src/",
    }
    assert search_paths_for_the_verifier(paths, "/app") == {
        "PATH": "/usr/local/bin:/usr/bin:/application/bin",
        "PYTHONPATH": "/opt/lib",
    }


def test_nothing_changes_without_workdir_entries() -> None:
    assert search_paths_for_the_verifier({"PATH": "/usr/local/bin:/usr/bin", "PYTHONPATH": "/opt"}, "/app/") == {}
    assert search_paths_for_the_verifier({"PATH": "/app/bin"}, "") == {}
