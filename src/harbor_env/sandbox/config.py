"""Options of the local sandbox, as given in Harbor's `EnvironmentConfig.kwargs`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# The host's folders a sandbox on the host's root sees: programs, libraries, configuration.
HOST_SYSTEM_PATHS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/usr", "/etc")


class LocalSandboxConfig(BaseModel):
    """Options for :class:`harbor_env.sandbox.LocalSandbox`.

    Pass them as Harbor environment kwargs, e.g.
    `EnvironmentConfig(import_path="harbor_env.sandbox:LocalSandbox", kwargs={"rootfs": "/images/x"})`.
    """

    model_config = ConfigDict(extra="forbid")

    rootfs: str | None = Field(
        default=None,
        description="Unpacked image root file system (e.g. from `docker export`) to run on "
        "instead of the host's `/`. Read-only; the task's working directory starts as a copy "
        "of the image's.",
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
