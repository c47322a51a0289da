"""The sandbox's root file system: a private writable directory with a read-only base on top.

The sandbox's `/` is a per-sandbox directory on the host (`<sandbox>/root`). Everything the
base (the host's `/`, or an unpacked image root file system) provides is bind-mounted into it
read-only, entry by entry. Paths the sandbox owns (the working directory, /tmp, /logs, files a
Dockerfile COPYs, ...) are plain directories of that private root, so they are writable, never
shared between sandboxes, and the host reaches them directly for uploads and downloads.

Only the directories on the way to a path the sandbox owns are opened up ("expanded") and
their entries bound one by one; every other base entry is a single read-only bind.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harbor_env.errors import LocalSandboxError
from harbor_env.sandbox.dockerfile import CopyStep, apply_copy

# Never taken from the base: bubblewrap provides fresh ones (proc, dev) or the sandbox owns them.
_NEVER_FROM_BASE = {"/proc", "/dev", "/sys", "/tmp", "/run", "/var/tmp"}
# Directories every sandbox owns privately, besides the working directory and home.
PRIVATE_DIRS = ("/tmp", "/var/tmp", "/run", "/logs", "/tests", "/solution")


@dataclass(frozen=True)
class Bind:
    """A host path mounted at a sandbox path (Harbor's log mounts, for instance)."""

    source: Path
    target: str
    read_only: bool = False


def normalize(path: str) -> str:
    """An absolute, normalized sandbox path."""
    if not path.startswith("/"):
        raise ValueError(f"sandbox paths must be absolute, got {path!r}")
    return posixpath.normpath(path).replace("//", "/")


def _ancestors(path: str) -> list[str]:
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:i]) if i else "/" for i in range(len(parts))]


def _is_under(path: str, prefix: str) -> bool:
    return path == prefix or prefix == "/" or path.startswith(prefix + "/")


@dataclass
class RootFilesystem:
    """Plans the bind mounts of one sandbox and maps sandbox paths to host paths."""

    root: Path  # the private host directory that is the sandbox's `/`
    base: Path  # `/` for the host, or an unpacked image root file system
    owned: set[str] = field(default_factory=set)  # sandbox paths that come from `root`
    hidden: set[str] = field(default_factory=set)  # base paths the sandbox must not see
    allowed: set[str] | None = None  # the only base paths it may see (None: all of the base)
    binds: list[Bind] = field(default_factory=list)
    root_on_host: bool = True  # False when the sandbox's root is a tmpfs only it can see
    mounted_root: Path | None = None  # bound as `/` instead of `root` (the quota's tmpfs, filled from root)
    layer: Path | None = None  # an overlay of the base with a private upper layer, mounted here (image mode)
    _read_only: dict[str, Path] = field(default_factory=dict)  # sandbox path -> base path

    def bwrap_args(self) -> list[str]:
        """`bwrap` arguments for the root file system (mounts only; no namespaces)."""
        owned = {normalize(p) for p in self.owned}
        self._read_only = {}
        if self.layer is not None:
            # The whole base is writable through the overlay; the owned folders come from the
            # private root on top of it, where the host reaches them.
            args = ["--bind", str(self.layer), "/"]
            private = self.mounted_root or self.root
            for path in sorted(owned, key=lambda p: p.count("/")):
                if not any(_is_under(path, other) for other in owned if other != path):
                    args += ["--bind", str(private / path.lstrip("/")), path]
        else:
            hidden = {normalize(p) for p in self.hidden}
            expanded = {a for p in owned | hidden for a in _ancestors(p)}
            args = ["--bind", str(self.mounted_root or self.root), "/"]
            self._walk("/", owned | hidden | _NEVER_FROM_BASE, expanded, args)
        args += ["--ro-bind", "/sys", "/sys", "--dev", "/dev", "--proc", "/proc"]
        for bind in sorted(self.binds, key=lambda b: b.target.count("/")):
            args += ["--ro-bind" if bind.read_only else "--bind", str(bind.source), normalize(bind.target)]
        return args

    def _walk(self, directory: str, skip: set[str], expanded: set[str], args: list[str]) -> None:
        base_dir = self.base / directory.lstrip("/")
        try:
            entries = sorted(os.scandir(base_dir), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            path = posixpath.join(directory, entry.name)
            if path in skip:
                continue
            visible = self.allowed is None or any(_is_under(path, a) for a in self.allowed)
            leads_to_allowed = self.allowed is not None and any(_is_under(a, path) for a in self.allowed)
            if entry.is_symlink():
                if visible:
                    args += ["--symlink", os.readlink(entry.path), path]
            elif (path in expanded or (leads_to_allowed and not visible)) and entry.is_dir():
                args += ["--dir", path]
                self._walk(path, skip, expanded, args)
            elif not visible:
                continue
            elif entry.is_dir() or entry.is_file():
                args += ["--ro-bind", entry.path, path]
                self._read_only[path] = Path(entry.path)
            # sockets, fifos and devices of the base are never exposed

    def host_path(self, sandbox_path: str, *, for_write: bool) -> Path | None:
        """The host path behind a sandbox path, or None when the host cannot reach it safely.

        None means: go through the sandbox instead (read-only path, or a symlink on the way
        that must be resolved inside the sandbox, not on the host).
        """
        path = normalize(sandbox_path)
        for bind in sorted(self.binds, key=lambda b: len(b.target), reverse=True):
            target = normalize(bind.target)
            if _is_under(path, target):
                if for_write and bind.read_only:
                    return None
                return self._contained(bind.source, posixpath.relpath(path, target))
        for target, source in self._read_only.items():
            if _is_under(path, target):
                if for_write:
                    return None
                return self._contained(source, posixpath.relpath(path, target))
        if not self.root_on_host or not self._owns(path):
            return None
        return self._contained(self.root, path.lstrip("/"))

    def _owns(self, path: str) -> bool:
        """Whether `path` lies in the private root (always, but for the overlay's own paths)."""
        return self.layer is None or any(_is_under(path, normalize(owned)) for owned in self.owned)

    def initial_path(self, sandbox_path: str) -> Path:
        """Where the host finds what `sandbox_path` holds when the sandbox starts."""
        path = normalize(sandbox_path)
        return (self.root if self._owns(path) else self.base) / path.lstrip("/")

    @staticmethod
    def _contained(prefix: Path, relative: str) -> Path | None:
        candidate = prefix / relative if relative not in ("", ".") else prefix
        # Resolve the deepest existing ancestor: a symlink planted by the agent must not lead
        # the host outside the sandbox.
        existing = candidate
        while not existing.exists() and not existing.is_symlink() and existing != prefix:
            existing = existing.parent
        resolved = Path(os.path.realpath(existing))
        if resolved != prefix.resolve() and not resolved.is_relative_to(prefix.resolve()):
            return None
        if existing.is_symlink():
            return None
        return candidate


def hidden_paths(
    *, sandboxes_dir: Path, trials_dir: Path, extra: Iterable[str], home: str | None, on_image: bool
) -> set[str]:
    """Base paths a sandbox must not see: home folders, every sandbox's folder and other trials'
    logs (its own are bound at /logs/*), plus `extra`. On an image (`on_image`) /root and /home
    are the task's own; only host paths are hidden there."""
    hidden = {"/root", "/home", str(sandboxes_dir), str(trials_dir), *extra}
    if home and home != "/":
        hidden.add(home)
    if on_image:
        hidden -= {"/root", "/home"}
    return {normalize(p) for p in hidden if p.startswith("/") and normalize(p) != "/"}


@dataclass(frozen=True)
class LogMounts:
    """Harbor's log directories for one sandbox: `bound` are bind-mounted from the host;
    `unbound` (auto_mounting off) become folders of the private root that Harbor downloads."""

    bound: list[Mapping[str, Any]] = field(default_factory=list)
    unbound: set[str] = field(default_factory=set)
    writable_only: str | None = None  # the verifier's sandbox writes only this one (the reward)


def plan_filesystem(
    root: Path,
    base: Path,
    *,
    workdir: str,
    hidden: set[str],
    allowed: set[str] | None,
    mounts: LogMounts,
    copies: Iterable[CopyStep] = (),
    context: Path | None = None,
    layer: Path | None = None,
    private_workdir: bool = True,
) -> RootFilesystem:
    """Prepare the private `root` of a sandbox and plan its mounts.

    Owned directories are created (on an image, with the image's WORKDIR and /root copied in),
    Harbor's mounts bound, the Dockerfile's COPY steps applied from the build `context`. With a
    `layer` (the base as a writable overlay), WORKDIR and /root stay in it, unless
    `private_workdir` asks for an empty WORKDIR of the private root (the fresh verifier's).
    Returns the plan."""
    fs = RootFilesystem(root=root, base=base, allowed=allowed, layer=layer)
    if layer is None:
        fs.owned = {*PRIVATE_DIRS, workdir, "/root"}
    else:
        # An image may lack its WORKDIR (buildah makes it only when a later step uses it; the
        # container runtime then creates it empty): then it is an empty folder of the private root.
        private_workdir = private_workdir or not (base / workdir.lstrip("/")).is_dir()
        fs.owned = {*PRIVATE_DIRS, *([workdir] if private_workdir else [])}
    fs.hidden = hidden - fs.owned
    for mount in mounts.bound:
        if mount.get("type", "bind") != "bind":
            raise LocalSandboxError(f"local sandbox: only bind mounts are supported, got {mount}")
        target = normalize(mount["target"])
        read_only = bool(mount.get("read_only")) or (mounts.writable_only not in (None, target))
        fs.binds.append(Bind(Path(mount["source"]), mount["target"], read_only))
        Path(mount["source"]).mkdir(parents=True, exist_ok=True)
    fs.owned |= mounts.unbound
    on_image = allowed is None  # the base is an image, all of it the task's
    for owned in fs.owned:
        target_dir = root / owned.lstrip("/")
        source = base / owned.lstrip("/")
        if on_image and layer is None and source.is_dir() and owned not in PRIVATE_DIRS:
            shutil.copytree(source, target_dir, symlinks=True, dirs_exist_ok=True)
        target_dir.mkdir(parents=True, exist_ok=True)
    for tmp in ("/tmp", "/var/tmp"):
        (root / tmp.lstrip("/")).chmod(0o1777)
    for directory in mounts.unbound:
        # Harbor makes its log directories writable by any user.
        (root / directory.lstrip("/")).chmod(0o777)
    for step in copies:
        assert context is not None, "COPY steps need the build context"
        fs.owned |= apply_copy(step, context=context, dockerfile=context / "Dockerfile", root=root)
    return fs
