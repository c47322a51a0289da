"""task_info.py: task.toml's verifier mode and network mentions, and the image's passwd."""

from __future__ import annotations

from pathlib import Path

import pytest

from harbor_env.errors import LocalSandboxError
from harbor_env.sandbox.task_info import passwd_entry, read_task_toml, states_network, verifier_mode


def test_read_task_toml(tmp_path: Path) -> None:
    assert read_task_toml(tmp_path) == {}
    (tmp_path / "task.toml").write_text("[metadata]\nverifier_sandbox = 'shared'\n")
    assert read_task_toml(tmp_path) == {"metadata": {"verifier_sandbox": "shared"}}
    (tmp_path / "task.toml").write_text("not = = toml")
    assert read_task_toml(tmp_path) == {}


def test_verifier_mode(tmp_path: Path) -> None:
    assert verifier_mode(tmp_path, {}) is None
    assert verifier_mode(tmp_path, {"metadata": "odd"}) is None
    assert verifier_mode(tmp_path, {"metadata": {"verifier_sandbox": "fresh"}}) == "fresh"
    assert verifier_mode(tmp_path, {"metadata": {"verifier_sandbox": "shared"}}) == "shared"
    with pytest.raises(LocalSandboxError) as raised:
        verifier_mode(tmp_path, {"metadata": {"verifier_sandbox": "none"}})
    assert str(raised.value) == (
        f'{tmp_path / "task.toml"}: [metadata] verifier_sandbox must be "fresh" or "shared", got \'none\''
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, False),
        ({"environment": {"cpus": 1}}, False),
        ({"environment": {"allow_internet": False}}, True),
        ({"environment": {"network_mode": "public"}}, True),
        ({"steps": [{"name": "a"}, {"environment": {"network_mode": "no-network"}}]}, True),
        ({"metadata": {"note": "network_mode"}}, False),  # a value naming it is no statement
    ],
)
def test_states_network(data: dict, expected: bool) -> None:
    assert states_network(data) is expected


def test_passwd_entry(tmp_path: Path) -> None:
    assert passwd_entry(tmp_path, "root") is None  # no /etc/passwd
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\nbroken:line\nagent:x:1000:1001::/home/agent:/bin/sh\n"
    )
    assert passwd_entry(tmp_path, "agent") == (1000, 1001, "/home/agent")
    assert passwd_entry(tmp_path, 1000) == (1000, 1001, "/home/agent")
    assert passwd_entry(tmp_path, 0) == (0, 0, "/root")
    assert passwd_entry(tmp_path, "1000") is None  # a string is a name, never a uid
    assert passwd_entry(tmp_path, "broken") is None
    assert passwd_entry(tmp_path, "nobody") is None
