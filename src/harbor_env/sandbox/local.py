"""LocalSandbox: a Harbor environment that runs a task on this host, without containers.

Each sandbox is one bubblewrap process tree in its own mount, PID, IPC, UTS and (unless the
task may use the network) network namespace. Its init keeps the namespaces alive between
commands; every `exec` joins them with `nsenter`, so daemons an agent starts (tmux) survive
from one command to the next exactly as in `docker exec`. Killing the init ends the PID
namespace, and with it every process the sandbox ever started.

If this Python process dies, the kernel kills the init (bubblewrap's parent-death signal; the
init also ends on EOF of its stdin), so a crash cannot leave a sandbox (or a daemon in it)
running; its folder and cgroups are reaped later (reaper.py). Commands run without the
capabilities to mount or touch cgroups (capabilities.py). When verification starts,
`prepare_verifier` stops the agent's processes and, in the default fresh mode, moves the
agent's WORKDIR into a new sandbox for the tests (verifier_isolation.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import json
import logging
import os
import posixpath
import re
import shutil
import signal
import tarfile
import uuid
from pathlib import Path
from typing import IO, Any

from harbor.environments.base import BaseEnvironment, ExecResult
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
from harbor_env.sandbox.capabilities import command_capability_numbers, init_bwrap_args, privilege_drop
from harbor_env.sandbox.commands import AgentSpec, SandboxCommands, command_server
from harbor_env.sandbox.config import LocalSandboxConfig
from harbor_env.sandbox.dockerfile import DOCKER_DEFAULT_PATH, ImageLayout, sandbox_layout
from harbor_env.sandbox.filesystem import LogMounts, RootFilesystem, hidden_paths, normalize, plan_filesystem
from harbor_env.sandbox.host_files import empty_host_dir, extract_within, same_dir
from harbor_env.sandbox.host_support import check_rootfs, require_tools, start_failure_message
from harbor_env.sandbox.limits import CgroupLimits, sandbox_limits, unenforced
from harbor_env.sandbox.quota import quota_tools, with_storage_quota
from harbor_env.sandbox.task_info import passwd_entry, read_task_toml, states_network, verifier_mode
from harbor_env.verifier_isolation import run_isolation_command

DEFAULT_PATH = DOCKER_DEFAULT_PATH
DEFAULT_WORKDIR = "/app"
VERIFIER_DIR = str(EnvironmentPaths.verifier_dir)
AGENT_DIR = str(EnvironmentPaths.agent_dir)
_BASE_ENV_PARAMETERS = set(inspect.signature(BaseEnvironment.__init__).parameters)
# Harbor 0.25 made binding its log directories to the host opt-in (`auto_mounting`, off by
# default: the trial then downloads them). The local sandbox has always bound them, so rewards
# and agent logs land in the trial folder with nothing to copy; it keeps doing so unless
# `auto_mounting=False` is given. Harbor before 0.25 always hands it the mounts to bind.
_HARBOR_AUTO_MOUNTING = "auto_mounting" in _BASE_ENV_PARAMETERS
_warned: set[tuple[str, ...]] = set()


def _warn_once(logger: logging.Logger, key: tuple[str, ...], message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning(message)


class LocalSandbox(BaseEnvironment):
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
        if _HARBOR_AUTO_MOUNTING:
            kwargs.setdefault("auto_mounting", True)
        self._base = Path(self.config.rootfs or "/")
        self._process: asyncio.subprocess.Process | None = None
        self._init_pid: int | None = None
        self._cgroup: CgroupLimits | None = None
        self._dir: Path | None = None
        self._fs: RootFilesystem | None = None
        self._layout = ImageLayout()
        self._network_isolated = True
        self._base_env: dict[str, str] = {}
        self._tools: dict[str, str] = {}
        self._storage_mb: int | None = None
        self._agent_logs_host: Path | None = None  # the trial's agent folder, while not bound
        self._commands: SandboxCommands | None = None
        self._agent_lock = asyncio.Lock()
        path = self.config.command_path
        if path == "server" and os.geteuid() != 0:
            raise ValueError('local sandbox: command_path = "server" needs root on the host; use "auto" or "nsenter"')
        self.command_path = ("server" if os.geteuid() == 0 else "nsenter") if path == "auto" else path
        super().__init__(*args, **kwargs)
        task_toml = read_task_toml(self.environment_dir.parent)
        self._task_states_network = states_network(task_toml)
        self.verifier_mode = verifier_mode(self.environment_dir.parent, task_toml) or self.config.verifier

    @staticmethod
    def type() -> str:
        return "local"

    @property
    def capabilities(self) -> EnvironmentCapabilities:
        # mounted: Harbor's log directories are bind-mounted, so nothing is copied back.
        # dynamic_network_policy: each exec decides whether to join the sandbox's network
        # namespace, so the verifier phase may get a different policy than the agent.
        return EnvironmentCapabilities(disable_internet=True, mounted=True, dynamic_network_policy=True)

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
        return self._init_pid

    # ------------------------------------------------------------------ definition

    def _validate_definition(self) -> None:
        dockerfile = self.environment_dir / "Dockerfile"
        if not dockerfile.is_file() and not self.task_env_config.docker_image:
            raise FileNotFoundError(
                f"{dockerfile} not found (and task.toml sets no [environment].docker_image): "
                "the local sandbox reads WORKDIR, ENV and COPY from it"
            )
        if self.config.rootfs is not None:
            check_rootfs(Path(self.config.rootfs))

    def _read_layout(self) -> ImageLayout:
        dockerfile = self.environment_dir / "Dockerfile"
        on_image = self.config.rootfs is not None
        layout, skipped = sandbox_layout(dockerfile, on_image=on_image, docker_image=self.task_env_config.docker_image)
        if skipped:
            _warn_once(
                self.logger,
                ("dockerfile", str(self.environment_dir)),
                f"local sandbox: {dockerfile} instructions not applied: {'; '.join(skipped)}. "
                "If the task needs them, run it with its image (rootfs=<unpacked image> or "
                "Harbor's docker environment).",
            )
        return layout

    # ------------------------------------------------------------------ lifecycle

    def _sandbox_parent(self) -> Path:
        parent = Path(self.config.sandbox_dir) if self.config.sandbox_dir else reaper.default_sandbox_parent()
        parent.mkdir(parents=True, exist_ok=True)
        return parent.resolve()

    def _workdir(self) -> str:
        return normalize(self.task_env_config.workdir or self._layout.workdir or DEFAULT_WORKDIR)

    def _plan_filesystem(self, root: Path, parent: Path, *, for_verifier: bool = False) -> RootFilesystem:
        on_image = self.config.rootfs is not None
        hidden = hidden_paths(
            sandboxes_dir=parent,
            trials_dir=self.trial_paths.trial_dir.resolve().parent,
            extra=self.config.hide_paths,
            home=os.environ.get("HOME"),
            on_image=on_image,
        )
        bound = self._host_mounts if _HARBOR_AUTO_MOUNTING else self._mounts
        mounts = LogMounts(
            bound=bound,
            unbound={normalize(m["target"]) for m in self._mounts if m not in bound},
            writable_only=VERIFIER_DIR if for_verifier else None,
            # Under a quota the agent's log folder is part of the quota's tmpfs, so the agent
            # cannot fill the host's disk through it; it is copied to the trial at the end.
            into_root=AGENT_DIR if self._storage_mb is not None and not for_verifier else None,
        )
        fs, self._agent_logs_host = plan_filesystem(
            root,
            self._base,
            workdir=self._workdir(),
            hidden=hidden,
            allowed=None if on_image else {normalize(p) for p in self.config.host_paths},
            mounts=mounts,
            copies=self._layout.copies,
            context=self.environment_dir,
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
            _warn_once(
                self.logger,
                ("limits", *missing),
                f"local sandbox: cannot enforce {', '.join(missing)} here (needs a writable "
                "cgroup v2 or v1 hierarchy with the memory/cpu/pids controllers, e.g. run as root "
                "or under a delegated systemd scope); sandboxes run without those limits",
            )
        self._storage_mb = None
        storage = self.task_env_config.storage_mb
        if storage and self.config.enforce_limits:
            tools = quota_tools()
            if tools is not None:
                self._storage_mb = storage
                self._tools.update(tools)
            else:
                _warn_once(
                    self.logger,
                    ("limits", "storage_mb"),
                    "local sandbox: cannot enforce storage_mb here (the quota is a tmpfs mounted "
                    "for the sandbox, which needs root and util-linux's unshare and mount); "
                    "sandboxes run without a storage quota",
                )

    def _namespace_args(self) -> list[str]:
        args = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net", "--hostname", "sandbox"]
        if os.geteuid() != 0:
            # Unprivileged hosts: a user namespace makes the sandbox's user root inside.
            args += ["--unshare-user", "--uid", "0", "--gid", "0"]
        return args + ["--chdir", self._workdir(), "--setenv", "PATH", DEFAULT_PATH]

    async def start(self, force_build: bool) -> None:
        self._tools.update(require_tools(nsenter=self.command_path == "nsenter"))
        self._layout = self._read_layout()
        await self._create(for_verifier=False)
        self._base_env = {"PATH": DEFAULT_PATH, "HOSTNAME": "sandbox", **self._layout.env}
        await self._apply_network_policy(self._network_policy)
        await self._upload_environment_dir_after_start()

    async def _create(self, *, for_verifier: bool) -> None:
        """A new sandbox from the task's environment; for the verifier, with an empty WORKDIR
        (the agent's is moved in) and every mount but the verifier's read-only."""
        parent = self._sandbox_parent()
        name = f"{re.sub(r'[^A-Za-z0-9_.-]', '_', self.session_id)[:80]}-{uuid.uuid4().hex[:8]}"
        self._dir = parent / name
        await asyncio.to_thread(reaper.reap_now_and_then, parent)
        try:
            root = self._dir / "root"
            root.mkdir(parents=True)
            reaper.record_owner(self._dir, [])
            self._apply_limits(name)
            reaper.record_owner(self._dir, self._cgroup.groups if self._cgroup else [])
            self._fs = self._plan_filesystem(root, parent, for_verifier=for_verifier)
            if for_verifier:
                workdir = root / self._workdir().lstrip("/")
                await asyncio.to_thread(shutil.rmtree, workdir)
                workdir.mkdir(parents=True)
            await self._spawn_init()
        except BaseException:
            await self._teardown(delete=True)
            raise

    # ------------------------------------------------------------------ verifier

    async def prepare_verifier(self) -> None:
        """Called when verification starts (verifier_isolation.py): in shared mode, stop the
        agent's processes and re-create the verifier's folders in this sandbox; in fresh mode,
        move the agent's final WORKDIR into a new sandbox and run the tests there."""
        await run_isolation_command(self)
        await self._sync_agent_logs()
        if self.verifier_mode == "fresh":
            await self._respawn_with_workdir()

    async def _respawn_with_workdir(self) -> None:
        old_dir = self._dir
        assert old_dir is not None
        archive = old_dir / "workdir.tar"
        workdir = self._workdir()
        # tar inside the sandbox: links the agent planted are archived as links, never followed
        # on the host; the archive lives in the sandbox's host folder, which no sandbox sees.
        with archive.open("wb") as out:
            code, _, stderr = await self._run(["tar", "-C", workdir, "-cf", "-", "."], user=None, stdout=out)
        if code not in (0, 1):  # 1: a file changed while read (nothing of the agent runs now)
            raise LocalSandboxError(
                f"local sandbox: cannot archive {workdir} for the verifier: {stderr.decode(errors='replace').strip()}"
            )
        await self._stop_processes()
        self._dir = None
        try:
            await self._create(for_verifier=True)
            with archive.open("rb") as source:
                code, _, stderr = await self._run(["tar", "-C", workdir, "-xpf", "-"], user=None, stdin=source)
            if code != 0:
                raise LocalSandboxError(
                    f"local sandbox: cannot restore {workdir} for the verifier: "
                    f"{stderr.decode(errors='replace').strip()}"
                )
        finally:
            await asyncio.to_thread(shutil.rmtree, old_dir, ignore_errors=True)

    async def _spawn_init(self) -> None:
        assert self._fs is not None and self._dir is not None
        info_read, info_write = os.pipe()
        argv = [
            self._tools["bwrap"],
            *self._fs.bwrap_args(),
            *(privilege_drop(self._tools["setpriv"]).bwrap_args() if self.command_path == "nsenter" else []),
            *self._namespace_args(),
            *init_bwrap_args(),
            # The sandbox dies with this process, whatever its commands hold open: the kernel
            # sends its init SIGKILL when the owner exits (stdin EOF below is the second way).
            "--die-with-parent",
            # Our shell is PID 1 (bash reaps orphans): signals from inside cannot kill it.
            "--as-pid-1",
            "--info-fd",
            str(info_write),
            "--",
            self._init_shell(),
            "-c",
            # Tell the host we are ready, then live until the host closes our stdin (this
            # process died). Then kill the whole namespace.
            "echo ready; read _; kill -KILL -1",
        ]
        if self._storage_mb is not None:
            argv = self._with_storage_quota(argv)
        if self._cgroup is not None:
            argv = self._cgroup.wrap(argv)
        try:
            self._process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(info_write,),
                env={"PATH": DEFAULT_PATH},
            )
        finally:
            os.close(info_write)
        try:
            assert self._process.stdout is not None
            line = await asyncio.wait_for(self._process.stdout.readline(), self.config.start_timeout_sec)
            if line.strip() != b"ready":
                stderr = b""
                if self._process.stderr is not None:
                    with contextlib.suppress(asyncio.TimeoutError):
                        stderr = await asyncio.wait_for(self._process.stderr.read(), 2)
                raise LocalSandboxError(self._start_failure_message(stderr.decode(errors="replace").strip()))
            info = json.loads(os.read(info_read, 65536) or b"{}")
            self._init_pid = int(info["child-pid"])
        except TimeoutError:
            raise LocalSandboxError(
                f"local sandbox: did not start within {self.config.start_timeout_sec} s "
                "(raise start_timeout_sec if the host is overloaded)"
            ) from None
        finally:
            os.close(info_read)

    def _init_shell(self) -> str:
        # bash reaps the orphans reparented to it; dash as PID 1 would leave them as zombies.
        return self._shell()

    def _with_storage_quota(self, argv: list[str]) -> list[str]:
        """Run the init on a writable root of `storage_mb` (quota.py). The host then reaches the
        private root only through the sandbox (tar over nsenter), so uploads count against it too."""
        assert self._fs is not None and self._dir is not None and self._storage_mb is not None
        quota = self._dir / "quota"
        quota.mkdir()
        self._fs.root_on_host = False
        return with_storage_quota(
            argv, unshare=self._tools["unshare"], storage_mb=self._storage_mb, quota=quota, root=self._fs.root
        )

    def _start_failure_message(self, stderr: str) -> str:
        return start_failure_message(stderr)

    async def stop(self, delete: bool) -> None:
        try:
            await self._sync_agent_logs()
        finally:
            await self._teardown(delete=delete and not self.config.keep)

    async def _sync_agent_logs(self) -> None:
        """Copy the agent's log folder from the quota's tmpfs into the trial (once the agent is
        done): through tar, as links and files, skipping whatever would land outside it."""
        host, self._agent_logs_host = self._agent_logs_host, None
        if host is None or self._dir is None or self._process is None or self._process.returncode is not None:
            return
        archive = self._dir / "agent-logs.tar"
        try:
            with archive.open("wb") as out:
                await self._run(["tar", "-C", AGENT_DIR, "-cf", "-", "."], user=None, stdout=out, timeout_sec=60)
            await asyncio.to_thread(extract_within, archive, host)
        except (TimeoutError, LocalSandboxError, OSError) as exc:
            # Logs only: the sandbox died under us, or the agent left something unreadable.
            self.logger.warning(f"local sandbox: could not copy {AGENT_DIR} to {host}: {exc}")
        finally:
            archive.unlink(missing_ok=True)

    async def _teardown(self, *, delete: bool) -> None:
        await self._stop_processes()
        if self._dir is not None:
            if delete:
                await asyncio.to_thread(shutil.rmtree, self._dir, ignore_errors=True)
            else:
                reaper.release(self._dir)
                self.logger.info(f"local sandbox: kept {self._dir}")
            self._dir = None

    async def _stop_processes(self) -> None:
        """Kill the sandbox's init (and with it every process in it) and remove its cgroups."""
        commands, self._commands = self._commands, None
        if commands is not None:
            commands.close()
        process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()
            if self._init_pid is not None:
                # PID 1 of the namespace: the kernel kills every other process in it.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self._init_pid, signal.SIGKILL)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        self._init_pid = None
        if self._cgroup is not None:
            await asyncio.to_thread(self._cgroup.destroy)
            self._cgroup = None

    # ------------------------------------------------------------------ network

    async def _apply_network_policy(self, network_policy: NetworkPolicy) -> None:
        mode = network_policy.network_mode
        if mode == NetworkMode.PUBLIC:
            self._network_isolated = not self._task_states_network and self.config.default_network == "off"
        else:
            # no-network; allowlists are refused by Harbor before start (not a capability).
            self._network_isolated = True

    @property
    def network_isolated(self) -> bool:
        """Whether commands run without network access (own network namespace)."""
        return self._network_isolated

    # ------------------------------------------------------------------ exec

    def _user_args(self, user: str | int | None) -> tuple[tuple[int, int] | None, str]:
        if user in (None, "root", 0, "0"):
            return None, "/root"
        entry = passwd_entry(self._base, int(user) if isinstance(user, str) and user.isdigit() else user)
        if entry is None:
            raise ValueError(f"local sandbox: user {user!r} does not exist in {self._base / 'etc/passwd'}")
        uid, gid, home = entry
        if os.geteuid() != 0:
            _warn_once(
                self.logger,
                ("user", str(user)),
                f"local sandbox: cannot switch to user {user!r} without root on the host; "
                "running as the sandbox's root",
            )
            return None, "/root"
        return (uid, gid), home

    def _require_running(self) -> int:
        if self._init_pid is None or self._process is None:
            raise LocalSandboxError("local sandbox: not running (start() was not called, or it was stopped)")
        if self._process.returncode is not None:
            raise LocalSandboxError(
                f"local sandbox: its init exited with {self._process.returncode}; the sandbox is gone"
            )
        return self._init_pid

    def _enter_argv(self, init_pid: int, ids: tuple[int, int] | None, command: list[str]) -> list[str]:
        """The command line that runs `command` in the sandbox through nsenter (hosts without root)."""
        namespaces = ["-m", "-u", "-i", "-p"] + ([] if not self._network_isolated else ["-n"])
        if os.geteuid() != 0:
            namespaces = ["-U", "--preserve-credentials", *namespaces]
        # nsenter needs the host's capabilities to join; setpriv then drops them (capabilities.py).
        drop = privilege_drop(self._tools["setpriv"]).argv(*(ids or (None, None)))
        argv = [self._tools["nsenter"], "-t", str(init_pid), *namespaces, "-r", "-w", "--", *drop, *command]
        if self._cgroup is not None:
            argv = self._cgroup.wrap(argv)
        return argv

    async def _run(
        self,
        command: list[str],
        *,
        user: str | int | None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        stdin: bytes | IO[bytes] | None = None,
        stdout: IO[bytes] | None = None,
        timeout_sec: float | None = None,
    ) -> tuple[int, bytes, bytes]:
        """Run `command` in the sandbox, in `cwd` (default: WORKDIR): (exit code, stdout, stderr).
        stdin: bytes, or a file it reads; stdout: a file it writes to instead of the bytes returned."""
        init_pid = self._require_running()
        ids, home = self._user_args(user)
        env = {"HOME": home, **self._base_env, **(env or {})}
        if self.command_path == "server":
            commands = await self._agent(init_pid)
            return await commands.run(
                command,
                cwd=cwd or self._workdir(),
                env=env,
                uid=ids[0] if ids else None,
                gid=ids[1] if ids else None,
                network=self._network_isolated,
                stdin=stdin,
                stdout=stdout,
                timeout_sec=timeout_sec,
            )
        if cwd is not None:
            # `cd` inside the sandbox: nsenter resolves its own --wd on the host side.
            shell = self._shell()
            command = [shell, "-c", 'cd -- "$1" || exit 1; shift; exec "$@"', shell, cwd, *command]
        piped_stdin = isinstance(stdin, bytes)
        process = await asyncio.create_subprocess_exec(
            *self._enter_argv(init_pid, ids, command),
            stdin=asyncio.subprocess.PIPE if piped_stdin else (stdin or asyncio.subprocess.DEVNULL),
            stdout=stdout or asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,  # one process group, killed as a whole on timeout
        )
        try:
            out, stderr = await asyncio.wait_for(process.communicate(stdin if piped_stdin else None), timeout_sec)
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(process.wait(), 5)
            raise
        code = process.returncode or 0
        # A command killed by a signal reads as 128+N, as a shell and `docker exec` report it.
        return (128 - code if code < 0 else code), out or b"", stderr

    async def _agent(self, init_pid: int) -> SandboxCommands:
        """This sandbox's command agent (command_server.py), started on the first command."""
        async with self._agent_lock:
            if self._commands is None or not self._commands.open:
                cgroups = [str(g / "cgroup.procs") for g in self._cgroup.groups] if self._cgroup else []
                spec = AgentSpec(init_pid, command_capability_numbers(), cgroups)
                self._commands = await command_server().agent(spec)
            return self._commands

    def _shell(self) -> str:
        return "/bin/bash" if (self._base / "bin/bash").exists() else "/bin/sh"

    async def exec(
        self,
        command: str,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout_sec: int | None = None,
        user: str | int | None = None,
    ) -> ExecResult:
        shell = self._shell()
        try:
            code, stdout, stderr = await self._run(
                [shell, "-c", command],
                user=self._resolve_user(user),
                cwd=cwd or self._workdir(),
                env=self._merge_env(env),
                timeout_sec=timeout_sec,
            )
        except TimeoutError:
            raise RuntimeError(f"Command timed out after {timeout_sec} seconds") from None
        return ExecResult(
            stdout=stdout.decode(errors="replace") if stdout else None,
            stderr=stderr.decode(errors="replace") if stderr else None,
            return_code=code,
        )

    # ------------------------------------------------------------------ files

    def _host(self, sandbox_path: str, *, for_write: bool) -> Path | None:
        if self._fs is None:
            raise LocalSandboxError("local sandbox: not running (start() was not called, or it was stopped)")
        return self._fs.host_path(sandbox_path, for_write=for_write)

    async def upload_file(self, source_path: Path | str, target_path: str) -> None:
        host = self._host(target_path, for_write=True)
        if host is not None and not host.is_dir():
            host.parent.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(shutil.copy2, source_path, host)
            return
        await self._upload_through_sandbox(Path(source_path), target_path, as_file=True)

    async def upload_dir(self, source_dir: Path | str, target_dir: str) -> None:
        host = self._host(target_dir, for_write=True)
        if host is not None:
            if not same_dir(host, Path(source_dir)):  # a bound log directory is already there
                await asyncio.to_thread(shutil.copytree, source_dir, host, symlinks=True, dirs_exist_ok=True)
            return
        await self._upload_through_sandbox(Path(source_dir), target_dir, as_file=False)

    async def download_file(self, source_path: str, target_path: Path | str) -> None:
        target = Path(target_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        host = self._host(source_path, for_write=False)
        if host is not None and host.is_file():
            await asyncio.to_thread(shutil.copy2, host, target)
            return
        code, stdout, stderr = await self._run(["/bin/cat", "--", source_path], user=None)
        if code != 0:
            raise FileNotFoundError(
                f"local sandbox: cannot read {source_path}: {stderr.decode(errors='replace').strip()}"
            )
        target.write_bytes(stdout)

    async def empty_dirs(self, dirs: Any, *, chmod: bool = True) -> ExecResult | None:
        """Harbor's "exist and be empty" for each directory, through host paths where the host
        reaches them (Harbor's log mounts, the private root): no command in the sandbox, which
        Harbor runs twice per episode. Anything else (a symlink the agent planted on the way)
        goes through the sandbox as in Harbor."""
        through_sandbox = []
        for directory in dirs:
            host = self._host(str(directory), for_write=True)
            if host is None or host.is_symlink() or (host.exists() and not host.is_dir()):
                through_sandbox.append(directory)
                continue
            await asyncio.to_thread(empty_host_dir, host, chmod)
        return await super().empty_dirs(through_sandbox, chmod=chmod) if through_sandbox else None

    async def download_dir(self, source_dir: str, target_dir: Path | str) -> None:
        target = Path(target_dir)
        target.mkdir(parents=True, exist_ok=True)
        host = self._host(source_dir, for_write=False)
        if host is not None and host.is_dir():
            if not same_dir(host, target):  # a bound log directory is already there
                await asyncio.to_thread(shutil.copytree, host, target, symlinks=True, dirs_exist_ok=True)
            return
        code, stdout, stderr = await self._run(["tar", "-C", source_dir, "-cf", "-", "."], user=None)
        if code != 0:
            raise FileNotFoundError(
                f"local sandbox: cannot read {source_dir}: {stderr.decode(errors='replace').strip()}"
            )
        with tarfile.open(fileobj=io.BytesIO(stdout)) as archive:
            archive.extractall(target, filter="data")

    async def _upload_through_sandbox(self, source: Path, target: str, *, as_file: bool) -> None:
        """Copy into a path the host cannot write directly, with tar inside the sandbox."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            if as_file:
                archive.add(source, arcname=posixpath.basename(target))
            else:
                archive.add(source, arcname=".")
        directory = posixpath.dirname(target) if as_file else target
        code, _, stderr = await self._run(
            ["/bin/sh", "-c", 'mkdir -p -- "$0" && tar -C "$0" -xf -', directory],
            user=None,
            stdin=buffer.getvalue(),
        )
        if code != 0:
            raise PermissionError(f"local sandbox: cannot write {target}: {stderr.decode(errors='replace').strip()}")
