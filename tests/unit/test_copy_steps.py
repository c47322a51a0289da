"""dockerfile.apply_copy: COPY/ADD steps copied from the build context into a private root."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from harbor_env.errors import LocalSandboxError
from harbor_env.sandbox.dockerfile import CopyStep, apply_copy


@pytest.fixture
def context(tmp_path: Path) -> Path:
    ctx = tmp_path / "environment"
    (ctx / "pkg" / "sub").mkdir(parents=True)
    (ctx / "pkg" / "init.py").write_text("init")
    (ctx / "pkg" / "sub" / "deep.txt").write_text("deep")
    (ctx / "a.py").write_text("a")
    (ctx / "b.py").write_text("b")
    (ctx / "note.txt").write_text("note")
    with tarfile.open(ctx / "data.tar", "w") as archive:
        for name, text in (("top/x.txt", b"x"), ("y.txt", b"y")):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            archive.addfile(info, io.BytesIO(text))
    (tmp_path / "secret").write_text("host")
    return ctx


def copy(step: CopyStep, context: Path, root: Path) -> set[str]:
    return apply_copy(step, context=context, dockerfile=context / "Dockerfile", root=root)


def test_file_to_a_file_path(context: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    owned = copy(CopyStep(("note.txt",), "/etc/motd", False, False, 3), context, root)
    assert owned == {"/etc/motd"}
    assert (root / "etc/motd").read_text() == "note"


def test_glob_into_a_directory(context: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    owned = copy(CopyStep(("*.py",), "/app", True, False, 3), context, root)
    assert owned == {"/app/a.py", "/app/b.py"}
    assert sorted(p.name for p in (root / "app").iterdir()) == ["a.py", "b.py"]


def test_directory_contents_are_copied(context: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    owned = copy(CopyStep(("pkg",), "/opt/pkg", False, False, 4), context, root)
    assert owned == {"/opt/pkg", "/opt/pkg/init.py", "/opt/pkg/sub"}
    assert (root / "opt/pkg/sub/deep.txt").read_text() == "deep"


def test_add_extracts_a_local_archive_copy_does_not(context: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert copy(CopyStep(("data.tar",), "/data", False, True, 5), context, root) == {"/data/top", "/data/y.txt"}
    assert (root / "data/top/x.txt").read_text() == "x"
    assert copy(CopyStep(("data.tar",), "/raw/", True, False, 6), context, root) == {"/raw/data.tar"}
    assert tarfile.is_tarfile(root / "raw/data.tar")


def test_source_outside_the_context_names_the_line(context: Path, tmp_path: Path) -> None:
    with pytest.raises(LocalSandboxError, match=r"Dockerfile:7: COPY source \.\./secret is outside the build context"):
        copy(CopyStep(("../secret",), "/s", False, False, 7), context, tmp_path / "root")
    assert not (tmp_path / "root" / "s").exists()


def test_symlink_leading_out_of_the_context_is_refused(context: Path, tmp_path: Path) -> None:
    (context / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(LocalSandboxError, match="Dockerfile:2: COPY source link is outside"):
        copy(CopyStep(("link",), "/s", False, False, 2), context, tmp_path / "root")


def test_missing_source_names_the_line(context: Path, tmp_path: Path) -> None:
    with pytest.raises(LocalSandboxError, match=r"Dockerfile:9: COPY source nope\.txt not found in "):
        copy(CopyStep(("nope.txt",), "/n", False, False, 9), context, tmp_path / "root")
