"""The image tool at hand (podman, or docker's CLI): build a task's image or fetch a prebuilt
one, read its configuration, and unpack its root file system into a folder.

Both tools take the same command lines for what is used here (build, pull, load, image
inspect, create, export, rm), so one code path serves either. podman needs no daemon and is
preferred; docker is used where it is the only one installed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from harbor_env.errors import LocalSandboxError

Engine = Literal["auto", "podman", "docker"]
ENGINES = ("podman", "docker")
IMAGE_TAG_PREFIX = "localhost/harbor-env-image"
# Archives a task's docker_image may name instead of a registry image (podman's transports).
ARCHIVE_PREFIXES = ("oci-archive:", "docker-archive:")
# The kernel's name of this machine -> the OCI name images state as their architecture.
_OCI_ARCHITECTURE = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


class ImageError(LocalSandboxError):
    """A task's image cannot be made or used: one line, naming the task and what to fix."""


@dataclass(frozen=True)
class ImageConfig:
    """What of an image's configuration a sandbox on its root file system honours."""

    image_id: str
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    user: str | None = None
    architecture: str | None = None

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ImageConfig:
        env = data.get("env")
        return cls(
            image_id=str(data["image_id"]),
            env={str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {},
            workdir=str(data["workdir"]) if data.get("workdir") else None,
            user=str(data["user"]) if data.get("user") else None,
            architecture=str(data["architecture"]) if data.get("architecture") else None,
        )


def host_architecture() -> str:
    machine = platform.machine()
    return _OCI_ARCHITECTURE.get(machine, machine)


def find_engine(choice: Engine = "auto") -> str:
    """Path of the image tool to use; one line naming what to install when there is none."""
    names = ENGINES if choice == "auto" else (choice,)
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    wanted = " or ".join(names)
    raise ImageError(
        f"local sandbox: image mode needs {wanted} to build or fetch the task's image, and none is "
        "installed (Debian/Ubuntu: apt-get install podman; no daemon needed); or run the task on "
        'the host\'s root with environment kwargs image_mode = "host"'
    )


@dataclass(frozen=True)
class ImageEngine:
    """Commands of one image tool (`path`: podman or docker)."""

    path: str

    @property
    def name(self) -> str:
        return Path(self.path).name

    def _run(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.path, *args], capture_output=True, text=True, timeout=timeout, check=False)

    def build(self, context: Path, dockerfile: Path, *, tag: str, task: str, no_cache: bool = False) -> str:
        """Build `dockerfile` in `context`; the image's id. A failed build names the task and the
        step that failed."""
        with tempfile.TemporaryDirectory(prefix="harbor-env-build-") as scratch:
            iidfile = Path(scratch) / "iid"
            done = self._run(
                "build",
                "--file",
                str(dockerfile),
                "--iidfile",
                str(iidfile),
                "--tag",
                tag,
                *(["--no-cache"] if no_cache else []),
                str(context),
            )
            if done.returncode != 0 or not iidfile.is_file():
                raise ImageError(f"{task}: building its image failed: {build_failure(done.stdout + done.stderr)}")
            return iidfile.read_text().strip().removeprefix("sha256:")

    def fetch(self, reference: str, *, task: str, base: Path) -> str:
        """A prebuilt image: a registry reference pulled when not present, or an archive
        (`oci-archive:PATH`, `docker-archive:PATH`, a path relative to `base`) loaded. Its id."""
        archive = _archive_path(reference, base)
        if archive is not None:
            if not archive.is_file():
                raise ImageError(f"{task}: docker_image {reference}: no such archive {archive}")
            done = self._run("load", "--input", str(archive))
            loaded = re.findall(r"Loaded image(?:\(s\))?(?: ID)?:\s*(\S+)", done.stdout + done.stderr)
            if done.returncode != 0 or not loaded:
                detail = _last_line(done.stderr or done.stdout)
                raise ImageError(f"{task}: cannot load image archive {archive}: {detail}")
            reference = loaded[-1].split(",")[0]
        elif self._run("image", "inspect", reference).returncode != 0:
            done = self._run("pull", reference)
            if done.returncode != 0:
                raise ImageError(f"{task}: cannot pull image {reference}: {_last_line(done.stderr or done.stdout)}")
        return self.inspect(reference, task=task).image_id

    def inspect(self, reference: str, *, task: str) -> ImageConfig:
        done = self._run("image", "inspect", reference)
        try:
            data = json.loads(done.stdout)[0]
        except (json.JSONDecodeError, IndexError, KeyError):
            raise ImageError(f"{task}: cannot inspect image {reference}: {_last_line(done.stderr)}") from None
        config = data.get("Config") or {}
        env = dict(entry.split("=", 1) for entry in config.get("Env") or [] if "=" in entry)
        return ImageConfig(
            image_id=str(data["Id"]).removeprefix("sha256:"),
            env=env,
            workdir=config.get("WorkingDir") or None,
            user=config.get("User") or None,
            architecture=data.get("Architecture"),
        )

    def export_root(self, image_id: str, target: Path, *, task: str) -> None:
        """Unpack the image's root file system into the empty folder `target`."""
        created = self._run("create", "--entrypoint", "/bin/sh", image_id)
        if created.returncode != 0:
            detail = _last_line(created.stderr)
            raise ImageError(f"{task}: cannot create a container of image {image_id[:12]}: {detail}")
        container = created.stdout.strip().splitlines()[-1]
        try:
            owners = [] if os.geteuid() == 0 else ["--no-same-owner", "--no-same-permissions"]
            export_command = [self.path, "export", container]
            with subprocess.Popen(export_command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as export:
                untar = subprocess.run(
                    ["tar", "-x", "-C", str(target), "--numeric-owner", *owners],
                    stdin=export.stdout,
                    capture_output=True,
                    check=False,
                )
                assert export.stderr is not None
                export_error = export.stderr.read().decode(errors="replace")
            if export.returncode != 0 or untar.returncode != 0:
                detail = export_error or untar.stderr.decode(errors="replace")
                raise ImageError(f"{task}: cannot unpack image {image_id[:12]}: {_last_line(detail)}")
        finally:
            self._run("rm", "--force", container)


def build_failure(output: str) -> str:
    """The line of a failed build's output that says what failed: the failing step and its error."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    step = next((line for line in reversed(lines) if re.match(r"(STEP \d+/\d+|Step \d+/\d+|#\d+ \[)", line)), None)
    error = next((line for line in reversed(lines) if re.search(r"\berror\b", line, re.IGNORECASE)), None)
    parts = [part for part in (step, error or (lines[-1] if lines else None)) if part]
    return " | ".join(dict.fromkeys(parts)) or "no output"


def _archive_path(reference: str, base: Path) -> Path | None:
    for prefix in ARCHIVE_PREFIXES:
        if reference.startswith(prefix):
            path = Path(reference.removeprefix(prefix).split(":")[0])
            return path if path.is_absolute() else base / path
    if reference.endswith((".tar", ".tar.gz", ".tgz")):
        path = Path(reference)
        return path if path.is_absolute() else base / path
    return None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
