"""Options of the local sandbox, as given in Harbor's `EnvironmentConfig.kwargs`."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# The host's folders a sandbox on the host's root sees: programs, libraries, configuration.
IMAGE_MODE_ENV_VAR = "HARBOR_ENV_IMAGE_MODE"
HOST_SYSTEM_PATHS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/usr", "/etc")


class LocalSandboxConfig(BaseModel):
    """Options for :class:`harbor_env.sandbox.LocalSandbox`.

    Pass them as Harbor environment kwargs, e.g.
    `EnvironmentConfig(import_path="harbor_env.sandbox:LocalSandbox", kwargs={"rootfs": "/images/x"})`.
    """

    model_config = ConfigDict(extra="forbid")

    image_mode: Literal["auto", "image", "host"] = Field(
        default_factory=lambda: os.environ.get(IMAGE_MODE_ENV_VAR) or "auto",  # type: ignore[return-value]
        description="image: run on the task's image, built (or its docker_image fetched) once with "
        "podman or docker and unpacked into the image cache. host: on the host's root, applying only "
        "WORKDIR, ENV and COPY. auto: the image wherever the Dockerfile has more than that (RUN, "
        "USER, ...) or task.toml has only a docker_image. Default: $HARBOR_ENV_IMAGE_MODE, else auto.",
    )
    image_cache: str | None = Field(
        default=None,
        description="Where image roots are kept. Default: $HARBOR_ENV_IMAGE_CACHE, else "
        "~/.cache/harbor-env/images. Prebuild with `python -m harbor_env.sandbox.images build DIR`.",
    )
    image_cache_gb: float = Field(
        default=50.0,
        gt=0,
        description="Past this size the least recently used image roots no sandbox uses are removed.",
    )
    image_tool: Literal["auto", "podman", "docker"] = Field(
        default="auto", description="What builds and fetches images: podman (no daemon), else docker's CLI."
    )
    writable_layer: Literal["auto", "overlay", "copy"] = Field(
        default="auto",
        description="On an image: overlay (needs root): the whole image is writable, each sandbox "
        "writing to its own upper layer. copy: WORKDIR and home are private copies, the rest of the "
        "image is read-only. auto: overlay where it can be mounted.",
    )
    rootfs: str | None = Field(
        default=None,
        description="Unpacked image root file system (e.g. from `docker export`) to run on "
        "instead of the host's `/` or the task's own image. Never written; the sandbox writes to "
        "its own layer (writable_layer).",
    )
    sandbox_dir: str | None = Field(
        default=None,
        description="Where sandbox directories are created. Default: $HARBOR_ENV_SANDBOX_DIR, "
        "else <tmp>/harbor-env-sandboxes.",
    )
    keep: bool = Field(default=False, description="Keep the sandbox directory after stop.")
    default_network: Literal["off", "public"] = Field(
        default="off",
        description="Network for tasks whose task.toml states no network policy. Harbor "
        "defaults those to public; the local sandbox runs on the host, so it keeps them "
        "offline unless this says public. Stated policies are always followed.",
    )
    host_paths: list[str] = Field(
        default_factory=lambda: list(HOST_SYSTEM_PATHS),
        description="Host paths the sandbox sees (read-only) when it runs on the host's root "
        "file system: system folders only, so task folders, trials, sockets and home folders "
        "stay out. Ignored with rootfs (the image is all the sandbox sees).",
    )
    verifier: Literal["fresh", "shared"] = Field(
        default="fresh",
        description="fresh: the tests run in a new sandbox built from the task's environment "
        "holding only the agent's final WORKDIR. shared: they run in the agent's sandbox (Harbor's "
        "default), after every agent process is stopped and the verifier's folders re-created. "
        'A task may choose for itself: `[metadata] verifier_sandbox = "shared"` in task.toml.',
    )
    hide_paths: list[str] = Field(
        default_factory=list,
        description="Host paths the sandbox must not see, in addition to the defaults "
        "(home directories, the sandbox and trial directories).",
    )
    pids_limit: int | None = Field(
        default=4096, ge=16, description="Most processes a sandbox may run at once (cgroup pids)."
    )
    enforce_limits: bool = Field(default=True, description="Apply the task's cpus and memory_mb limits (cgroups).")
    start_timeout_sec: float = Field(default=30.0, gt=0)
    command_path: Literal["auto", "server", "nsenter"] = Field(
        default="auto",
        description="How commands enter the sandbox. server: forked by this process's command "
        "server (commands.py; needs root on the host); nsenter: nsenter + setpriv per command "
        "(works without root, costs about 3 ms more CPU a command). auto: server when root.",
    )

    @field_validator("hide_paths", "host_paths")
    @classmethod
    def _absolute(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if not path.startswith("/"):
                raise ValueError(f"entries must be absolute paths, got {path!r}")
        return paths
