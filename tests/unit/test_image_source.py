"""What identifies a task's image in the cache, what a failed build reports, and how the overlay
is mounted (the command line; tests/test_image_mode.py runs it)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from harbor_env.sandbox.image_cache import ImageSource
from harbor_env.sandbox.image_engine import ImageError, build_failure, find_engine
from harbor_env.sandbox.overlay import with_overlay

PODMAN_FAILURE = """STEP 1/3: FROM docker.io/library/debian:bookworm-slim
STEP 2/3: RUN apt-get install -y nothing-by-that-name
Reading package lists...
E: Unable to locate package nothing-by-that-name
Error: building at STEP "RUN apt-get install -y nothing-by-that-name": while running runtime: exit status 100
"""
DOCKER_FAILURE = """#5 [2/3] RUN make
#5 0.312 make: *** No targets specified and no makefile found.  Stop.
#5 ERROR: process "/bin/sh -c make" did not complete successfully: exit code: 2
"""


def _context(root: Path, dockerfile: str = "FROM debian\nRUN true\n") -> Path:
    (root / "environment/app").mkdir(parents=True)
    (root / "environment/Dockerfile").write_text(dockerfile)
    (root / "environment/app/main.py").write_text("print(1)\n")
    return root / "environment"


def test_the_source_digest_follows_the_build_context_not_its_place(tmp_path: Path) -> None:
    first = ImageSource("a", _context(tmp_path / "a"), None)
    moved = ImageSource("b", _context(tmp_path / "b"), None)
    assert first.digest() == moved.digest()
    (moved.context / "app/main.py").write_text("print(2)\n")
    assert first.digest() != moved.digest()
    (moved.context / "app/main.py").write_text("print(1)\n")
    os.chmod(moved.context / "app/main.py", 0o755)
    assert first.digest() != moved.digest(), "a mode change (COPY keeps it) must make a new image"


def test_a_prebuilt_image_is_identified_by_its_name(tmp_path: Path) -> None:
    context = _context(tmp_path)
    assert ImageSource("t", context, "img:1").digest() != ImageSource("t", context, "img:2").digest()
    assert ImageSource("t", context, "img:1").digest() != ImageSource("t", context, None).digest()


@pytest.mark.parametrize(
    "output,expected",
    [
        (PODMAN_FAILURE, ["STEP 2/3: RUN apt-get install -y nothing-by-that-name", "exit status 100"]),
        (DOCKER_FAILURE, ["#5 [2/3] RUN make", "exit code: 2"]),
        ("", ["no output"]),
    ],
)
def test_a_failed_build_names_the_step_and_its_error(output: str, expected: list[str]) -> None:
    line = build_failure(output)
    assert "\n" not in line
    for part in expected:
        assert part in line, line


def test_no_image_tool_is_one_line_naming_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ImageError, match=r"needs podman or docker .*apt-get install podman.*image_mode = \"host\""):
        find_engine("auto")


def test_the_overlay_is_mounted_in_a_mount_namespace_of_its_own(tmp_path: Path) -> None:
    argv = with_overlay(
        ["bwrap", "x"],
        lower=tmp_path / "rootfs",
        upper=tmp_path / "upper",
        merged=tmp_path / "m",
        unshare="/usr/bin/unshare",
    )
    assert argv[:5] == ["/usr/bin/unshare", "--mount", "--propagation", "private", "--"]
    assert argv[-2:] == ["bwrap", "x"]
    assert str(tmp_path / "upper.work") in argv  # overlayfs's work folder beside the upper one
    nested = with_overlay(["bwrap"], lower=tmp_path, upper=tmp_path / "u", merged=tmp_path / "m", unshare=None)
    assert nested[0] == "/bin/sh"  # inside the storage quota's namespace
