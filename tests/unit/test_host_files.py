"""host_files.py and host_support.py: host-side copies that trust nothing the agent left, and
the errors that say what the host lacks."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from harbor_env.errors import LocalSandboxError
from harbor_env.sandbox.host_files import empty_host_dir, extract_within, same_dir
from harbor_env.sandbox.host_support import check_rootfs, start_failure_message


def test_extract_within_skips_members_that_escape(tmp_path: Path) -> None:
    archive = tmp_path / "agent.tar"
    with tarfile.open(archive, "w") as tar:
        for name, kind, link in (
            ("ok.txt", tarfile.REGTYPE, ""),
            ("../escape.txt", tarfile.REGTYPE, ""),
            ("abs-link", tarfile.SYMTYPE, "/etc/passwd"),
            ("in-link", tarfile.SYMTYPE, "ok.txt"),
        ):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            data = b"data" if kind == tarfile.REGTYPE else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    target = tmp_path / "out"
    target.mkdir()
    extract_within(archive, target)
    assert sorted(p.name for p in target.iterdir()) == ["in-link", "ok.txt"]
    assert not (tmp_path / "escape.txt").exists()
    (tmp_path / "not-a-tar").write_bytes(b"garbage")
    extract_within(tmp_path / "not-a-tar", target)  # an agent's broken archive is no error


def test_empty_host_dir_never_follows_links(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    directory = tmp_path / "logs"
    (directory / "sub").mkdir(parents=True)
    (directory / "sub/f").write_text("f")
    (directory / "link").symlink_to(outside)
    empty_host_dir(directory, chmod=True)
    assert list(directory.iterdir()) == []
    assert (outside / "keep.txt").read_text() == "keep"
    assert directory.stat().st_mode & 0o777 == 0o777
    empty_host_dir(tmp_path / "new/dir", chmod=False)
    assert (tmp_path / "new/dir").is_dir()


def test_same_dir(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert same_dir(tmp_path / "a", tmp_path / "b")
    assert not same_dir(tmp_path / "a", tmp_path)
    assert not same_dir(tmp_path / "a", tmp_path / "missing")


def test_check_rootfs(tmp_path: Path) -> None:
    with pytest.raises(LocalSandboxError, match=f"rootfs {tmp_path / 'none'} is not a directory"):
        check_rootfs(tmp_path / "none")
    with pytest.raises(LocalSandboxError, match=f"rootfs {tmp_path} has no /bin/sh"):
        check_rootfs(tmp_path)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/sh").write_text("")
    check_rootfs(tmp_path)


def test_start_failure_message_names_the_fix() -> None:
    denied = start_failure_message("bwrap: Creating new namespace failed: Operation not permitted")
    assert denied.startswith("local sandbox: bubblewrap failed to start the sandbox: bwrap: Creating new namespace")
    assert "user.max_user_namespaces>0" in denied
    other = start_failure_message("")
    assert other == (
        "local sandbox: bubblewrap failed to start the sandbox: no output; "
        "check that bubblewrap works here: `bwrap --ro-bind / / --unshare-all true`"
    )
