"""filesystem.py: the bind mounts a sandbox gets, host paths behind sandbox paths, the private root."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from harbor_env.errors import LocalSandboxError
from harbor_env.sandbox.dockerfile import CopyStep
from harbor_env.sandbox.filesystem import (
    PRIVATE_DIRS,
    Bind,
    LogMounts,
    RootFilesystem,
    hidden_paths,
    normalize,
    plan_filesystem,
)

FRESH = ["--ro-bind", "/sys", "/sys", "--dev", "/dev", "--proc", "/proc"]


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """A small image root: /bin, /etc/passwd, /home/user, /usr, /proc, /link -> usr, /app/image.txt."""
    base = tmp_path / "base"
    for directory in ("bin", "etc", "home/user", "usr/lib", "proc", "app", "root", "tmp"):
        (base / directory).mkdir(parents=True)
    (base / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (base / "app/image.txt").write_text("from the image")
    (base / "root/.profile").write_text("profile")
    (base / "tmp/junk").write_text("junk")
    (base / "link").symlink_to("usr")
    os.mkfifo(base / "fifo")
    return base


def test_normalize() -> None:
    assert normalize("/a//b/../c/") == "/a/c"
    with pytest.raises(ValueError, match="sandbox paths must be absolute, got 'a/b'"):
        normalize("a/b")


def test_whole_base_read_only_except_owned_and_hidden(tmp_path: Path, base: Path) -> None:
    root = tmp_path / "root"
    fs = RootFilesystem(root=root, base=base, owned={"/app", "/tmp", "/root"}, hidden={"/home"})
    assert fs.bwrap_args() == [
        "--bind",
        str(root),
        "/",
        *("--ro-bind", str(base / "bin"), "/bin"),
        *("--ro-bind", str(base / "etc"), "/etc"),
        *("--symlink", "usr", "/link"),
        *("--ro-bind", str(base / "usr"), "/usr"),
        *FRESH,
    ]  # no /app, /root, /tmp (owned), /home (hidden), /proc (fresh), fifo (never exposed)


def test_owned_path_inside_a_base_directory_opens_it_up(tmp_path: Path, base: Path) -> None:
    fs = RootFilesystem(root=tmp_path / "root", base=base, owned={"/etc/app"}, hidden={"/home/user"})
    args = fs.bwrap_args()
    assert args[3 : -len(FRESH)] == [
        *("--ro-bind", str(base / "app"), "/app"),
        *("--ro-bind", str(base / "bin"), "/bin"),
        *("--dir", "/etc"),
        *("--ro-bind", str(base / "etc/passwd"), "/etc/passwd"),
        *("--dir", "/home"),
        *("--symlink", "usr", "/link"),
        *("--ro-bind", str(base / "root"), "/root"),
        *("--ro-bind", str(base / "usr"), "/usr"),
    ]


def test_allowed_paths_only(tmp_path: Path, base: Path) -> None:
    fs = RootFilesystem(root=tmp_path / "root", base=base, allowed={"/usr", "/etc/passwd"})
    assert fs.bwrap_args()[3 : -len(FRESH)] == [
        *("--dir", "/etc"),
        *("--ro-bind", str(base / "etc/passwd"), "/etc/passwd"),
        *("--ro-bind", str(base / "usr"), "/usr"),
    ]


def test_binds_come_last_outermost_first(tmp_path: Path, base: Path) -> None:
    fs = RootFilesystem(
        root=tmp_path / "root",
        base=base,
        allowed=set(),
        binds=[Bind(tmp_path / "v", "/logs/verifier/x", True), Bind(tmp_path / "a", "/logs/agent")],
    )
    assert fs.bwrap_args()[-6:] == [
        *("--bind", str(tmp_path / "a"), "/logs/agent"),
        *("--ro-bind", str(tmp_path / "v"), "/logs/verifier/x"),
    ]


def test_host_path_mapping(tmp_path: Path, base: Path) -> None:
    root = tmp_path / "root"
    (root / "app").mkdir(parents=True)
    logs = tmp_path / "logs"
    fs = RootFilesystem(
        root=root,
        base=base,
        owned={"/app"},
        binds=[Bind(logs / "agent", "/logs/agent"), Bind(logs / "verifier", "/logs/verifier", read_only=True)],
    )
    fs.bwrap_args()
    assert fs.host_path("/app/out.txt", for_write=True) == root / "app/out.txt"
    assert fs.host_path("/app", for_write=True) == root / "app"
    assert fs.host_path("/logs/agent/trace.json", for_write=True) == logs / "agent/trace.json"
    assert fs.host_path("/logs/verifier/reward.txt", for_write=False) == logs / "verifier/reward.txt"
    assert fs.host_path("/logs/verifier/reward.txt", for_write=True) is None  # read-only bind
    assert fs.host_path("/usr/lib", for_write=False) == base / "usr/lib"
    assert fs.host_path("/usr/lib/x", for_write=True) is None  # read-only base
    fs.root_on_host = False
    assert fs.host_path("/app/out.txt", for_write=True) is None  # the root is a tmpfs only the sandbox sees
    assert fs.host_path("/logs/agent/trace.json", for_write=True) == logs / "agent/trace.json"


def test_host_path_refuses_symlinks_the_agent_planted(tmp_path: Path, base: Path) -> None:
    root = tmp_path / "root"
    (root / "app/inside").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "app/escape").symlink_to(tmp_path / "outside")
    (root / "app/detour").symlink_to(root / "app/inside")
    fs = RootFilesystem(root=root, base=base, owned={"/app"})
    fs.bwrap_args()
    assert fs.host_path("/app/escape/file", for_write=True) is None  # resolves outside the root
    assert fs.host_path("/app/escape", for_write=False) is None
    assert fs.host_path("/app/detour/new/file", for_write=True) is None  # a link on the way: via the sandbox
    # normalized first: `..` cannot climb out of the sandbox's `/`
    assert fs.host_path("/app/../../etc/passwd", for_write=False) == base / "etc/passwd"
    assert fs.host_path("/app/../../etc/passwd", for_write=True) is None
    assert fs.host_path("/app/inside/new", for_write=True) == root / "app/inside/new"


def test_hidden_paths_on_the_host() -> None:
    hidden = hidden_paths(
        sandboxes_dir=Path("/var/sandboxes"),
        trials_dir=Path("/data/trials"),
        extra=["/srv/secret/", "relative", "/"],
        home="/home/me",
        on_image=False,
    )
    assert hidden == {"/root", "/home", "/var/sandboxes", "/data/trials", "/srv/secret", "/home/me"}
    assert "/" not in hidden_paths(sandboxes_dir=Path("/s"), trials_dir=Path("/t"), extra=[], home="/", on_image=False)


def test_hidden_paths_on_an_image_leave_its_root_and_home() -> None:
    hidden = hidden_paths(sandboxes_dir=Path("/s"), trials_dir=Path("/t"), extra=["/home"], home="/root", on_image=True)
    assert hidden == {"/s", "/t"}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def plan(root: Path, base: Path, **options: Any) -> RootFilesystem:
    """plan_filesystem for WORKDIR /app, nothing hidden, no base path allowed, no mounts, unless told."""
    defaults: dict[str, Any] = {"workdir": "/app", "hidden": set(), "allowed": set(), "mounts": LogMounts()}
    return plan_filesystem(root, base, **{**defaults, **options})


def test_plan_on_the_host(tmp_path: Path, base: Path) -> None:
    root, logs = tmp_path / "root", tmp_path / "logs"
    root.mkdir()
    mounts = LogMounts(
        bound=[
            {"type": "bind", "source": str(logs / "agent"), "target": "/logs/agent"},
            {"source": str(logs / "verifier"), "target": "/logs/verifier/", "read_only": False},
        ],
        unbound={"/logs/artifacts"},
    )
    fs = plan_filesystem(root, base, workdir="/app", hidden={"/home", "/app"}, allowed={"/usr"}, mounts=mounts)
    assert fs.owned == {*PRIVATE_DIRS, "/app", "/root", "/logs/artifacts"}
    assert fs.hidden == {"/home"}
    assert fs.allowed == {"/usr"}
    assert fs.binds == [
        Bind(logs / "agent", "/logs/agent", False),
        Bind(logs / "verifier", "/logs/verifier/", False),
    ]
    assert (logs / "agent").is_dir() and (logs / "verifier").is_dir()
    assert list((root / "app").iterdir()) == []  # the host's root is no image: nothing copied
    assert mode(root / "tmp") == 0o1777 and mode(root / "var/tmp") == 0o1777
    assert mode(root / "logs/artifacts") == 0o777


def test_plan_for_the_verifier(tmp_path: Path, base: Path) -> None:
    logs = tmp_path / "logs"
    bound = [
        {"source": str(logs / "agent"), "target": "/logs/agent"},
        {"source": str(logs / "verifier"), "target": "/logs/verifier"},
    ]
    fs = plan(tmp_path / "v", base, mounts=LogMounts(bound=bound, writable_only="/logs/verifier"))
    assert fs.binds == [Bind(logs / "agent", "/logs/agent", True), Bind(logs / "verifier", "/logs/verifier", False)]


def test_plan_on_an_image_copies_its_workdir_and_home(tmp_path: Path, base: Path) -> None:
    root = tmp_path / "root"
    plan(root, base, allowed=None)
    assert (root / "app/image.txt").read_text() == "from the image"
    assert (root / "root/.profile").read_text() == "profile"
    assert list((root / "tmp").iterdir()) == []  # private dirs start empty


def test_plan_applies_copies_and_owns_them(tmp_path: Path, base: Path) -> None:
    context = tmp_path / "environment"
    context.mkdir()
    (context / "f.txt").write_text("f")
    fs = plan(tmp_path / "root", base, copies=[CopyStep(("f.txt",), "/opt/f.txt", False, False, 2)], context=context)
    assert "/opt/f.txt" in fs.owned
    assert (tmp_path / "root/opt/f.txt").read_text() == "f"


def test_plan_refuses_other_mount_types(tmp_path: Path, base: Path) -> None:
    mounts = LogMounts(bound=[{"type": "volume", "source": "v", "target": "/data"}])
    with pytest.raises(LocalSandboxError, match="local sandbox: only bind mounts are supported, got "):
        plan(tmp_path / "root", base, mounts=mounts)
