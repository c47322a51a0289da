"""LocalSandbox: a Harbor environment that runs a task on this host, without containers.

Each sandbox is one bubblewrap process tree in its own mount, PID, IPC, UTS and (unless the
task may use the network) network namespace. Its init (init.py) keeps the namespaces alive
between commands; every `exec` joins them, through the sandbox's agent of the command server
(commands.py; `nsenter` on hosts without root: nsenter.py), so daemons an agent starts (tmux)
survive from one command to the next exactly as in `docker exec`. Killing the init ends the PID
namespace, and with it every process the sandbox ever started.

If this Python process dies, the kernel kills the init, so a crash cannot leave a sandbox (or
a daemon in it) running; its folder and cgroups are reaped later (reaper.py). Commands run
without the capabilities to mount or touch cgroups (capabilities.py). When verification starts,
`prepare_verifier` stops the agent's processes and, in the default fresh mode, moves the
agent's WORKDIR into a new sandbox for the tests (verifier_isolation.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import stat
import uuid
from pathlib import Path
from typing import Any

from harbor.environments.base import BaseEnvironment
from harbor.environments.capabilities import (
    EnvironmentCapabilities,
    EnvironmentResourceCapabilities,
)
from harbor.models.task.config import NetworkMode, NetworkPolicy
from harbor.models.trial.config import ResourceMode
from harbor.models.trial.paths import EnvironmentPaths
from pydantic import ValidationError

from harbor_env.errors import LocalSandboxError
from harbor_env.sandbox import reaper
from harbor_env.sandbox.capabilities import init_bwrap_args, privilege_drop
from harbor_env.sandbox.commands import SandboxCommands
from harbor_env.sandbox.config import LocalSandboxConfig
from harbor_env.sandbox.dockerfile import DOCKER_DEFAULT_PATH, ImageLayout, parse_dockerfile, sandbox_layout
from harbor_env.sandbox.exec import SandboxExec
from harbor_env.sandbox.files import SandboxFiles, archive_command
from harbor_env.sandbox.filesystem import LogMounts, RootFilesystem, hidden_paths, normalize, plan_filesystem
from harbor_env.sandbox.host_files import remove_tree
from harbor_env.sandbox.host_support import check_rootfs, require_tools, warn_once
from harbor_env.sandbox.image_cache import ImageCache, ImageRoot, ImageSource, default_cache_dir
from harbor_env.sandbox.init import SandboxInit, namespace_args
from harbor_env.sandbox.limits import CgroupLimits, sandbox_limits, unenforced
from harbor_env.sandbox.outbound import OutboundNetwork, slirp_tool
from harbor_env.sandbox.overlay import overlay_tools, with_overlay
from harbor_env.sandbox.quota import quota_tools, with_storage_quota
from harbor_env.sandbox.task_info import NEEDS_IMAGE_KEY, needs_image, read_task_toml, states_network, verifier_mode
from harbor_env.verifier_isolation import (
    ISOLATION_TIMEOUT_SEC,
    keeps_workdir_paths,
    run_isolation_command,
    search_paths_for_the_verifier,
    warn_removed_modules,
    warn_search_paths_once,
)

DEFAULT_PATH = DOCKER_DEFAULT_PATH
DEFAULT_WORKDIR = "/app"
VERIFIER_DIR = str(EnvironmentPaths.verifier_dir)
AGENT_DIR = str(EnvironmentPaths.agent_dir)
ARTIFACTS_DIR = str(EnvironmentPaths.artifacts_dir)
LOG_DIRS = (AGENT_DIR, VERIFIER_DIR, ARTIFACTS_DIR)
# A folder the verifier gets ($1: WORKDIR, the artifacts) as a tar stream, inside the sandbox,
# links archived as links (archive_command, the rest of the arguments); where the agent made it a
# link into /proc, /sys or /dev, an empty archive (tar would read the kernel's files).
_ARCHIVE_WORKDIR = r"""
case "$(readlink -f -- "$1")/" in /proc/* | /sys/* | /dev/*) exec tar -cf - -T /dev/null ;; esac
shift
exec "$@"
"""
_BASE_ENV_PARAMETERS = set(inspect.signature(BaseEnvironment.__init__).parameters)
# Harbor 0.25 made binding its log directories to the host opt-in (`auto_mounting`, off by
# default: the trial then downloads them). The local sandbox has always bound them, so rewards
# and agent logs land in the trial folder with nothing to copy; it keeps doing so unless
# `auto_mounting=False` is given. Harbor before 0.25 always hands it the mounts to bind.
_HARBOR_AUTO_MOUNTING = "auto_mounting" in _BASE_ENV_PARAMETERS


class LocalSandbox(SandboxExec, SandboxFiles):
    """Runs a Harbor task on this host in a bubblewrap sandbox (no Docker daemon needed)."""

    def __init__(self, *args: Any, **kwargs: Any):
        own = {k: kwargs.pop(k) for k in list(kwargs) if k in LocalSandboxConfig.model_fields}
        unknown = sorted(k for k in kwargs if k not in _BASE_ENV_PARAMETERS)
        if unknown:
            raise ValueError(
                f"local sandbox: unknown environment kwargs {unknown}; "
                f"allowed: {sorted(LocalSandboxConfig.model_fields)}"
            )
        try:
            self.config = LocalSandboxConfig(**own)
        except ValidationError as exc:
            raise ValueError(f"local sandbox: invalid environment kwargs: {exc}") from None
        # Under a storage quota nothing of the host is bound, Harbor's log folders included: they
        # are part of the quota's tmpfs, so the agent cannot fill the host's disk through them,
        # and Harbor copies them out through the sandbox (`mounted` is off).
        task_env_config = kwargs.get("task_env_config")
        storage_mb = getattr(task_env_config, "storage_mb", None)
        # The quota's tools, probed once: None where no quota is asked for or it cannot be mounted.
        self._quota_tools = quota_tools() if storage_mb and self.config.enforce_limits else None
        self._quota_planned = self._quota_tools is not None
        if _HARBOR_AUTO_MOUNTING:
            kwargs.setdefault("auto_mounting", not self._quota_planned)
        self._base = Path(self.config.rootfs or "/")
        self._image: ImageRoot | None = None  # image mode: the cached root, leased while this sandbox lives
        self._image_user: str | None = None
        self.image_mode = "host"  # decided from the task by _validate_definition: host, image or rootfs
        self._init: SandboxInit | None = None
        self._cgroup: CgroupLimits | None = None
        self._dir: Path | None = None
        self._fs: RootFilesystem | None = None
        self._layout = ImageLayout()
        self._network_isolated = True  # commands join the sandbox's own network namespace
        self._wants_outbound = False  # the network policy is public
        self._outbound: OutboundNetwork | None = None
        self._base_env: dict[str, str] = {}
        self._tools: dict[str, str] = {}
        self._storage_mb: int | None = None
        self._workdir_entries = ""  # WORKDIR's entries at the start, " "-separated
        self._commands: SandboxCommands | None = None
        self._agent_lock = asyncio.Lock()
        path = self.config.command_path
        if path == "server" and os.geteuid() != 0:
            raise ValueError('local sandbox: command_path = "server" needs root on the host; use "auto" or "nsenter"')
        self.command_path = ("server" if os.geteuid() == 0 else "nsenter") if path == "auto" else path
        super().__init__(*args, **kwargs)
        # The writable layer on an image: an overlay where this host can mount one (root).
        self._overlay_tools = None
        if self.image_mode != "host" and self.config.writable_layer != "copy":
            self._overlay_tools = overlay_tools()
            if self._overlay_tools is None and self.config.writable_layer == "overlay":
                raise ValueError(
                    'local sandbox: writable_layer = "overlay" needs root on the host (and util-linux\'s '
                    'unshare and mount); use "auto" or "copy"'
                )
        task_toml = read_task_toml(self.environment_dir.parent)
        self._task_states_network = states_network(task_toml)
        self.verifier_mode = verifier_mode(self.environment_dir.parent, task_toml) or self.config.verifier

    @staticmethod
    def type() -> str:
        return "local"

    @property
    def capabilities(self) -> EnvironmentCapabilities:
        # mounted: Harbor's log directories are bind-mounted, so nothing is copied back; under a
        # storage quota they are not (Harbor downloads them through the sandbox).
        # dynamic_network_policy: each exec decides whether to join the sandbox's network
        # namespace, so the verifier phase may get a different policy than the agent.
        return EnvironmentCapabilities(
            disable_internet=True, mounted=not self._quota_planned, dynamic_network_policy=True
        )

    @classmethod
    def resource_capabilities(cls) -> EnvironmentResourceCapabilities:
        return EnvironmentResourceCapabilities(cpu_limit=True, memory_limit=True)

    @property
    def sandbox_dir(self) -> Path | None:
        """The host directory of this sandbox while it exists."""
        return self._dir

    @property
    def init_pid(self) -> int | None:
        """Host PID of the sandbox's init (PID 1 of its namespace) while it runs."""
        return self._init.pid if self._init is not None else None

    # ------------------------------------------------------------------ definition

    def _validate_definition(self) -> None:
        dockerfile = self.environment_dir / "Dockerfile"
        if not dockerfile.is_file() and not self.task_env_config.docker_image:
            raise FileNotFoundError(
                f"{dockerfile} not found (and task.toml sets no [environment].docker_image): "
                "the local sandbox reads WORKDIR, ENV and COPY from it"
            )
        self.image_mode = self._choose_image_mode(dockerfile)

    def _choose_image_mode(self, dockerfile: Path) -> str:
        """rootfs: the unpacked image the user gave; image: the task's image, built or fetched
        once (image_cache.py); host: the host's root, with what the Dockerfile describes applied."""
        if self.config.rootfs is not None:
            check_rootfs(Path(self.config.rootfs))
            return "rootfs"
        task_dir = self.environment_dir.parent
        needs = needs_image(task_dir, read_task_toml(task_dir))
        if self.config.image_mode == "host":
            if needs:
                raise LocalSandboxError(
                    f"{task_dir / 'task.toml'}: [metadata] {NEEDS_IMAGE_KEY} = true: the task's tests need "
                    'its image, and image_mode = "host" runs it on the host\'s root; use image_mode "auto" or "image"'
                )
            return "host"
        if self.config.image_mode == "image" or needs:
            return "image"
        # auto: the image wherever the host's root cannot stand in for it: a prebuilt image (which
        # Harbor runs instead of the Dockerfile), or RUN, USER, ... steps.
        if self.task_env_config.docker_image or not dockerfile.is_file():
            return "image"
        return "image" if parse_dockerfile(dockerfile).not_applied else "host"

    @property
    def on_image(self) -> bool:
        """Whether the sandbox runs on an image's root file system (not the host's)."""
        return self.image_mode != "host"

    def _read_layout(self) -> ImageLayout:
        if self._image is not None:
            # The image's own configuration: its base image's ENV included.
            config = self._image.config
            return ImageLayout(workdir=config.workdir, env=dict(config.env))
        dockerfile = self.environment_dir / "Dockerfile"
        docker_image = self.task_env_config.docker_image
        layout, skipped = sandbox_layout(dockerfile, on_image=self.on_image, docker_image=docker_image)
        if skipped:
            warn_once(
                self.logger,
                ("dockerfile", str(self.environment_dir)),
                f"local sandbox: {dockerfile} instructions not applied: {'; '.join(skipped)}. "
                'If the task needs them, run it on its image (environment kwargs image_mode = "image").',
            )
        return layout

    # ------------------------------------------------------------------ lifecycle

    def _sandbox_parent(self) -> Path:
        parent = Path(self.config.sandbox_dir) if self.config.sandbox_dir else reaper.default_sandbox_parent()
        parent.mkdir(parents=True, exist_ok=True)
        return parent.resolve()

    def _workdir(self) -> str:
        return normalize(self.task_env_config.workdir or self._layout.workdir or DEFAULT_WORKDIR)

    def _image_cache(self) -> ImageCache:
        directory = Path(self.config.image_cache) if self.config.image_cache else default_cache_dir()
        return ImageCache(directory, max_bytes=int(self.config.image_cache_gb * 1024**3), engine=self.config.image_tool)

    async def _lease_image(self) -> None:
        """Image mode: the task's image root from the cache (built or fetched on first use)."""
        if self.image_mode != "image" or self._image is not None:
            return
        source = ImageSource.for_task(self.environment_dir.parent, self.task_env_config.docker_image)
        making = asyncio.ensure_future(asyncio.to_thread(self._image_cache().root_for, source))
        try:
            self._image = await asyncio.shield(making)
        except asyncio.CancelledError:
            # Harbor's build timeout: the build goes on in its thread (the next episode finds
            # its root); the lease it ends with is given back.
            making.add_done_callback(_release_when_made)
            raise
        self._base = self._image.rootfs
        self._image_user = self._image.config.user

    def _plan_filesystem(self, root: Path, parent: Path, *, for_verifier: bool = False) -> RootFilesystem:
        on_image = self.on_image
        hidden = hidden_paths(
            sandboxes_dir=parent,
            trials_dir=self.trial_paths.trial_dir.resolve().parent,
            extra=self.config.hide_paths,
            home=os.environ.get("HOME"),
            on_image=on_image,
        )
        if self._quota_planned:
            bound, unbound = [], {*LOG_DIRS, *(normalize(m["target"]) for m in self._mounts)}
        else:
            bound = self._host_mounts if _HARBOR_AUTO_MOUNTING else self._mounts
            unbound = {normalize(m["target"]) for m in self._mounts if m not in bound}
        mounts = LogMounts(bound=bound, unbound=unbound, writable_only=VERIFIER_DIR if for_verifier else None)
        fs = plan_filesystem(
            root,
            self._base,
            workdir=self._workdir(),
            hidden=hidden,
            allowed=None if on_image else {normalize(p) for p in self.config.host_paths},
            mounts=mounts,
            copies=self._layout.copies,
            context=self.environment_dir,
            layer=self._dir / "merged" if self._overlay_tools is not None and self._dir is not None else None,
            private_workdir=for_verifier,
        )
        return fs

    def _apply_limits(self, name: str) -> None:
        limits = sandbox_limits(
            enforce=self.config.enforce_limits,
            pids=self.config.pids_limit,
            memory_mb=self._resource_limit_value("memory", auto_mode=ResourceMode.LIMIT),
            cpus=self._resource_limit_value("cpu", auto_mode=ResourceMode.LIMIT),
        )
        self._cgroup = CgroupLimits.create(name, limits)
        missing = unenforced(limits, self._cgroup)
        if missing:
            warn_once(
                self.logger,
                ("limits", *missing),
                f"local sandbox: cannot enforce {', '.join(missing)} here (needs a writable "
                "cgroup v2 or v1 hierarchy with the memory/cpu/pids controllers, e.g. run as root "
                "or under a delegated systemd scope); sandboxes run without those limits",
            )
        self._storage_mb = None
        storage = self.task_env_config.storage_mb
        if self._quota_tools is not None:
            self._storage_mb = storage
            self._tools.update(self._quota_tools)
        elif storage and self.config.enforce_limits:
            warn_once(
                self.logger,
                ("limits", "storage_mb"),
                "local sandbox: cannot enforce storage_mb here (the quota is a tmpfs mounted "
                "for the sandbox, which needs root and util-linux's unshare and mount); "
                "sandboxes run without a storage quota",
            )

    async def start(self, force_build: bool) -> None:
        self._tools.update(require_tools(nsenter=self.command_path == "nsenter"))
        self._tools.update(self._overlay_tools or {})
        await self._lease_image()
        self._layout = self._read_layout()
        self._wants_outbound = self._outbound_wanted(self._network_policy)
        await self._create(for_verifier=False)
        # WORKDIR's entries before the agent runs (the task's own), from the prepared root.
        assert self._fs is not None
        with contextlib.suppress(OSError):
            self._workdir_entries = " ".join(os.listdir(self._fs.initial_path(self._workdir())))
        self._base_env = {"PATH": DEFAULT_PATH, "HOSTNAME": "sandbox", **self._layout.env}
        await self._apply_network_policy(self._network_policy)
        await self._upload_environment_dir_after_start()

    async def _create(self, *, for_verifier: bool, workdir_from: Path | None = None) -> None:
        """A new sandbox from the task's environment; for the verifier, with every mount but the
        verifier's read-only and an empty WORKDIR, or the host folder `workdir_from` renamed to it."""
        parent = self._sandbox_parent()
        name = f"{re.sub(r'[^A-Za-z0-9_.-]', '_', self.session_id)[:80]}-{uuid.uuid4().hex[:8]}"
        self._dir = parent / name
        await asyncio.to_thread(reaper.reap_now_and_then, parent)
        try:
            # 0700: what the agent made (a setuid-root file, say) is reachable by no other host
            # user while the folder exists; bubblewrap binds the root as root, and commands see
            # only the sandbox's own namespace.
            self._dir.mkdir(mode=0o700)
            root = self._dir / "root"
            root.mkdir()
            reaper.record_owner(self._dir, [])
            self._apply_limits(name)
            reaper.record_owner(self._dir, self._cgroup.groups if self._cgroup else [])
            self._fs = self._plan_filesystem(root, parent, for_verifier=for_verifier)
            if for_verifier:
                workdir = root / self._workdir().lstrip("/")
                await asyncio.to_thread(remove_tree, workdir)
                if workdir_from is not None:
                    workdir_from.rename(workdir)
                else:
                    workdir.mkdir(parents=True)
            await self._spawn_init()
            await self._connect_outbound()
        except BaseException:
            await self._teardown(delete=True)
            raise

    # ------------------------------------------------------------------ verifier

    async def prepare_verifier(self, timeout_sec: int | None = None, keep_workdir_modules: bool = False) -> None:
        """Called when verification starts (verifier_isolation.py): in shared mode, stop the
        agent's processes and re-create the verifier's folders in this sandbox; in fresh mode,
        move the agent's final WORKDIR into a new sandbox and run the tests there."""
        removed = await run_isolation_command(
            self,
            workdir=self._workdir(),
            timeout_sec=timeout_sec or ISOLATION_TIMEOUT_SEC,
            workdir_entries=self._workdir_entries,
            keep_workdir_modules=keep_workdir_modules,
        )
        warn_removed_modules(self.logger, self.environment_name, removed)
        if self.verifier_mode == "fresh":
            await self._respawn_with_workdir()
        metadata = read_task_toml(self.environment_dir.parent).get("metadata")
        if not keeps_workdir_paths(metadata if isinstance(metadata, dict) else {}):
            paths = {name: self._base_env[name] for name in ("PATH", "PYTHONPATH") if name in self._base_env}
            changed = search_paths_for_the_verifier(paths, self._workdir())
            if changed:
                warn_search_paths_once(self.logger, self.environment_name, changed)
                self._base_env.update(changed)

    async def _respawn_with_workdir(self) -> None:
        old_dir = self._dir
        assert old_dir is not None and self._fs is not None
        workdir = self._workdir()
        moved = self._fs.host_path(workdir, for_write=True)
        if moved is not None and moved.is_relative_to(self._fs.root) and _plain_directory(moved):
            # WORKDIR is a folder of the agent's root on the host: it moves into the verifier's
            # root as it is, whatever its size (a rename reads nothing and follows no link).
            await self._stop_processes()
            self._dir = None
            try:
                await self._create(for_verifier=True, workdir_from=moved)
            finally:
                await asyncio.to_thread(remove_tree, old_dir)
            return
        await self._respawn_through_tar(old_dir, workdir)

    async def _respawn_through_tar(self, old_dir: Path, workdir: str) -> None:
        """Where the host cannot reach WORKDIR (under a storage quota the root is a tmpfs only the
        sandbox sees) or the agent put a link or a mount there: through tar, inside each sandbox.
        Under a quota the agent's artifacts go along (Harbor collects them after verification)."""
        carried = [workdir, *([ARTIFACTS_DIR] if self._quota_planned else [])]
        archives = {folder: old_dir / f"carried-{i}.tar" for i, folder in enumerate(carried)}
        # tar inside the sandbox: links the agent planted are archived as links, never followed
        # on the host; the archives live in the sandbox's host folder, which no sandbox sees.
        for folder, archive in archives.items():
            with archive.open("wb") as out:
                code, _, stderr = await self._run(
                    ["sh", "-c", _ARCHIVE_WORKDIR, "archive", folder, *archive_command(folder)], user=None, stdout=out
                )
            if code not in (0, 1):  # 1: a file changed while read (nothing of the agent runs now)
                raise LocalSandboxError(
                    f"local sandbox: cannot archive {folder} for the verifier: "
                    f"{stderr.decode(errors='replace').strip()}"
                )
        await self._stop_processes()
        self._dir = None
        try:
            await self._create(for_verifier=True)
            for folder, archive in archives.items():
                with archive.open("rb") as source:
                    code, _, stderr = await self._run(["tar", "-C", folder, "-xpf", "-"], user=None, stdin=source)
                if code != 0:
                    raise LocalSandboxError(
                        f"local sandbox: cannot restore {folder} for the verifier: "
                        f"{stderr.decode(errors='replace').strip()}"
                    )
        finally:
            await asyncio.to_thread(remove_tree, old_dir)

    async def _spawn_init(self) -> None:
        assert self._fs is not None and self._dir is not None
        if self._storage_mb is not None:
            # The host then reaches the private root only through the sandbox, so uploads count too.
            self._fs.mounted_root = self._dir / "quota"
            self._fs.mounted_root.mkdir()
            self._fs.root_on_host = False
        bwrap = [
            self._tools["bwrap"],
            *self._fs.bwrap_args(),
            *(privilege_drop(self._tools["setpriv"]).bwrap_args() if self.command_path == "nsenter" else []),
            *namespace_args(self._workdir(), DEFAULT_PATH),
            *init_bwrap_args(),
        ]
        self._init = await SandboxInit.start(
            bwrap,
            shell=self._shell(),
            wrap=self._wrap_init,
            path=DEFAULT_PATH,
            timeout_sec=self.config.start_timeout_sec,
        )

    def _wrap_init(self, argv: list[str]) -> list[str]:
        """The init's command line on its writable layer (image mode), inside the storage quota's
        root and the sandbox's cgroups."""
        assert self._fs is not None and self._dir is not None
        quota = self._fs.mounted_root if self._storage_mb is not None else None
        if self._fs.layer is not None:
            # Under the quota the upper layer is part of its tmpfs (and of its mount namespace).
            upper = (quota / ".layer" if quota is not None else self._dir) / "upper"
            unshare = None if quota is not None else self._tools["unshare"]
            argv = with_overlay(argv, lower=self._base, upper=upper, merged=self._fs.layer, unshare=unshare)
        if quota is not None:
            assert self._storage_mb is not None
            # Its shell joins the cgroups too, while it mounts: one shell less, and the wait of the join hidden.
            return with_storage_quota(
                argv,
                unshare=self._tools["unshare"],
                storage_mb=self._storage_mb,
                quota=quota,
                root=self._fs.root,
                cgroup_procs=self._cgroup.procs if self._cgroup is not None else [],
            )
        return self._cgroup.wrap(argv) if self._cgroup is not None else argv

    async def stop(self, delete: bool) -> None:
        try:
            await self._teardown(delete=delete and not self.config.keep)
        finally:
            image, self._image = self._image, None
            if image is not None:
                image.release()

    async def _teardown(self, *, delete: bool) -> None:
        await self._stop_processes()
        if self._dir is not None:
            if delete:
                await asyncio.to_thread(remove_tree, self._dir)
            else:
                reaper.release(self._dir)
                self.logger.info(f"local sandbox: kept {self._dir}")
            self._dir = None

    async def _stop_processes(self) -> None:
        """Kill the sandbox's init (and with it every process in it) and remove its cgroups."""
        commands, self._commands = self._commands, None
        if commands is not None:
            commands.close()
        outbound, self._outbound = self._outbound, None
        if outbound is not None:
            await outbound.detach()
        init, self._init = self._init, None
        if init is not None:
            await init.stop()
        if self._cgroup is not None:
            await asyncio.to_thread(self._cgroup.destroy)
            self._cgroup = None

    # ------------------------------------------------------------------ network

    def _outbound_wanted(self, network_policy: NetworkPolicy) -> bool:
        # no-network: none; allowlists are refused by Harbor before start (not a capability).
        if network_policy.network_mode != NetworkMode.PUBLIC:
            return False
        return self._task_states_network or self.config.default_network == "public"

    async def _apply_network_policy(self, network_policy: NetworkPolicy) -> None:
        self._wants_outbound = self._outbound_wanted(network_policy)
        await self._connect_outbound()

    async def _connect_outbound(self) -> None:
        """Give the sandbox's own network namespace outbound access (outbound.py) while the
        policy is public, and take it away when it is not. Without slirp4netns, a public
        sandbox's commands run in the host's network namespace, as before (with a warning)."""
        if not self._wants_outbound:
            self._network_isolated = True
            outbound, self._outbound = self._outbound, None
            if outbound is not None:
                await outbound.detach()
            return
        tool = slirp_tool()
        if tool is None:
            warn_once(
                self.logger,
                ("network", "slirp4netns"),
                "local sandbox: slirp4netns not found; tasks with a public network run in the host's "
                "network namespace (the host's loopback services are reachable from them); install it "
                "(Debian/Ubuntu: apt-get install slirp4netns)",
            )
            self._network_isolated = False
            return
        self._network_isolated = True
        if self._outbound is None and self._init is not None:
            assert self._dir is not None
            self._outbound = await OutboundNetwork.attach(
                tool, self._init.pid, rootless=os.geteuid() != 0, log=self._dir / "slirp4netns.log"
            )

    @property
    def network_isolated(self) -> bool:
        """Whether commands run without network access (only the sandbox's own loopback)."""
        return self._network_isolated and self._outbound is None

    def _host(self, sandbox_path: str, *, for_write: bool) -> Path | None:
        if self._fs is None:
            raise LocalSandboxError("local sandbox: not running (start() was not called, or it was stopped)")
        return self._fs.host_path(sandbox_path, for_write=for_write)


def _release_when_made(making: asyncio.Future[ImageRoot]) -> None:
    if not making.cancelled() and making.exception() is None:
        making.result().release()


def _plain_directory(path: Path) -> bool:
    """A directory itself, not a link to one (a rename would move the link, not the folder)."""
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except OSError:
        return False
