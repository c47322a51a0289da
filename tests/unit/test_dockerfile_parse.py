"""dockerfile.py: what the sandbox reads from a Dockerfile, and errors that name file and line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harbor_env.errors import DockerfileError
from harbor_env.sandbox.dockerfile import DOCKER_DEFAULT_PATH, CopyStep, parse_dockerfile, sandbox_layout


def parse(tmp_path: Path, text: str):
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    return parse_dockerfile(path)


def test_from_workdir_env_and_arg_substitution(tmp_path: Path) -> None:
    layout = parse(
        tmp_path,
        "ARG BASE=python:3.12\nARG APP=/srv\nFROM $BASE\nWORKDIR ${APP}\nWORKDIR app\n"
        'ENV A=1 B="two words"\nENV PATH=/opt/bin:$PATH\nENV LEGACY some value\nENV C=${A}x D=${MISSING:-dflt}\n',
    )
    assert layout.base_image == "python:3.12"
    assert layout.workdir == "/srv/app"  # a relative WORKDIR goes on from the last one
    assert layout.env == {
        "A": "1",
        "B": "two words",
        "PATH": f"/opt/bin:{DOCKER_DEFAULT_PATH}",
        "LEGACY": "some value",
        "C": "1x",
        "D": "dflt",
    }
    assert layout.copies == [] and layout.not_applied == []


def test_env_quoting_follows_docker(tmp_path: Path) -> None:
    """Single quotes keep `$` literal, double quotes expand, a backslash escapes; each pair sees
    the variables as they were before its ENV line (Docker's rules, checked against its docs)."""
    layout = parse(
        tmp_path,
        "FROM debian\nENV A=1\n"
        "ENV A=2 B='single $A' C=\"double $A\" D=plain\\$A E=\"q\\\"x\" F='it''s'\n"
        "ENV LEGACY some $A 'lit $A'\n",
    )
    assert layout.env == {
        "A": "2",
        "B": "single $A",
        "C": "double 1",
        "D": "plain$A",
        "E": 'q"x',
        "F": "its",
        "LEGACY": "some 2 lit $A",
    }


def test_only_the_last_stage_counts(tmp_path: Path) -> None:
    layout = parse(
        tmp_path,
        "FROM golang AS build\nWORKDIR /build\nENV GOOS=linux\nRUN go build\n"
        "FROM debian:bookworm-slim\nCOPY --from=build /build/app /usr/bin/app\nUSER nobody\n",
    )
    assert layout.base_image == "debian:bookworm-slim"
    assert layout.workdir is None and layout.env == {}
    assert layout.not_applied == ["COPY --from=build /build/app /usr/bin/app (line 6)", "USER (line 7)"]


def test_run_user_and_metadata(tmp_path: Path) -> None:
    layout = parse(
        tmp_path,
        "FROM debian\n# a comment\nLABEL a=b\nRUN apt-get update && \\\n    apt-get install -y git\n"
        'EXPOSE 80\nUSER 1000\nCMD ["bash"]\nVOLUME /data\n',
    )
    assert layout.not_applied == ["RUN (line 4)", "USER (line 7)", "VOLUME (line 9)"]


def test_heredoc_body_is_not_read_as_instructions(tmp_path: Path) -> None:
    layout = parse(tmp_path, "FROM debian\nRUN <<EOF\nWORKDIR /nope\nEOF\nWORKDIR /yes\n")
    assert layout.workdir == "/yes"
    assert layout.not_applied == ["RUN (line 2)"]


def test_copy_and_add_steps(tmp_path: Path) -> None:
    layout = parse(
        tmp_path,
        'FROM debian\nWORKDIR /app\nCOPY a.txt /etc/a.txt\nCOPY a b dest/\nCOPY ["x y", "/abs"]\n'
        "COPY --chown=1:1 *.py lib\nADD data.tar /data\nADD https://example.com/f /f\n",
    )
    assert layout.copies == [
        CopyStep(("a.txt",), "/etc/a.txt", False, False, 3),
        CopyStep(("a", "b"), "/app/dest", True, False, 4),
        CopyStep(("x y",), "/abs", False, False, 5),
        CopyStep(("*.py",), "/app/lib", True, False, 6),
        CopyStep(("data.tar",), "/data", False, True, 7),
    ]
    assert layout.not_applied == ["ADD https://example.com/f /f (line 8)"]


def test_errors_name_the_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(
        DockerfileError, match=rf"^{re.escape(str(tmp_path / 'Dockerfile'))}:3: cannot parse COPY: needs at least"
    ):
        parse(tmp_path, "FROM debian\n\nCOPY onlyone\n")
    with pytest.raises(DockerfileError, match=rf"^{re.escape(str(tmp_path / 'Dockerfile'))}: no FROM instruction"):
        parse(tmp_path, "WORKDIR /app\n")
    with pytest.raises(DockerfileError, match=rf"^{re.escape(str(tmp_path / 'Dockerfile'))}:2: cannot parse ENV"):
        parse(tmp_path, "FROM debian\nENV A='unclosed\n")
    (tmp_path / "Dockerfile").write_bytes(b"FROM debian\n\xff\n")
    with pytest.raises(DockerfileError, match="not a text file"):
        parse_dockerfile(tmp_path / "Dockerfile")
    with pytest.raises(DockerfileError, match="cannot read the Dockerfile"):
        parse_dockerfile(tmp_path / "missing" / "Dockerfile")


def test_sandbox_layout_on_the_host_reports_from_and_keeps_copies(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM debian\nRUN true\nCOPY a /a\n")
    layout, skipped = sandbox_layout(tmp_path / "Dockerfile", on_image=False, docker_image=None)
    assert skipped == ["FROM debian (the host's root file system is used instead)", "RUN (line 2)"]
    assert [c.destination for c in layout.copies] == ["/a"]


def test_sandbox_layout_on_an_image_applies_no_copies(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM debian\nRUN true\nCOPY a /a\nWORKDIR /w\n")
    layout, skipped = sandbox_layout(tmp_path / "Dockerfile", on_image=True, docker_image=None)
    assert skipped == [] and layout.copies == [] and layout.workdir == "/w"


def test_sandbox_layout_without_a_dockerfile_uses_the_task_image(tmp_path: Path) -> None:
    layout, skipped = sandbox_layout(tmp_path / "Dockerfile", on_image=False, docker_image="img:1")
    assert skipped == ["FROM img:1 (the host's root file system is used instead)"]
    assert layout.workdir is None and layout.env == {}
