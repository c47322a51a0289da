"""The local sandbox's commands: Harbor's `exec`, and `_run` under it, on either command path.

Through the command server (commands.py) where the host gives root, else through nsenter
(nsenter.py); users come from the sandbox's /etc/passwd, the environment from the image's.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import IO

from harbor.environments.base import BaseEnvironment, ExecResult

from harbor_env.errors import LocalSandboxError
from harbor_env.sandbox.capabilities import command_capability_numbers
from harbor_env.sandbox.commands import AgentSpec, SandboxCommands, command_server
from harbor_env.sandbox.host_support import warn_once
from harbor_env.sandbox.init import SandboxInit
from harbor_env.sandbox.limits import CgroupLimits
from harbor_env.sandbox.nsenter import nsenter_argv, run_process
from harbor_env.sandbox.task_info import passwd_entry


class SandboxExec(BaseEnvironment):
    """Commands for LocalSandbox, which sets up the state below as its sandbox starts and stops."""

    command_path: str  # "server" or "nsenter"
    _base: Path  # the root file system the sandbox is built from (its /etc/passwd)
    _init: SandboxInit | None
    _cgroup: CgroupLimits | None
    _commands: SandboxCommands | None
    _agent_lock: asyncio.Lock
    _base_env: dict[str, str]
    _tools: dict[str, str]
    _network_isolated: bool
    _image_user: str | None  # the image's USER: who commands run as when Harbor names no user

    def _workdir(self) -> str:
        raise NotImplementedError

    def _user_args(self, user: str | int | None) -> tuple[tuple[int, int] | None, str]:
        if user in (None, "root", 0, "0"):
            return None, "/root"
        if isinstance(user, str):
            user = user.split(":", 1)[0]  # an image's USER may be user:group
        entry = passwd_entry(self._base, int(user) if isinstance(user, str) and user.isdigit() else user)
        if entry is None:
            raise ValueError(f"local sandbox: user {user!r} does not exist in {self._base / 'etc/passwd'}")
        uid, gid, home = entry
        if os.geteuid() != 0:
            warn_once(
                self.logger,
                ("user", str(user)),
                f"local sandbox: cannot switch to user {user!r} without root on the host; "
                "running as the sandbox's root",
            )
            return None, "/root"
        return (uid, gid), home

    def _require_running(self) -> int:
        if self._init is None:
            raise LocalSandboxError("local sandbox: not running (start() was not called, or it was stopped)")
        if self._init.exit_code is not None:
            raise LocalSandboxError(f"local sandbox: its init exited with {self._init.exit_code}; the sandbox is gone")
        return self._init.pid

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
        argv = nsenter_argv(
            self._tools,
            init_pid,
            command,
            ids=ids,
            network=self._network_isolated,
            cgroup=self._cgroup,
            cwd=cwd,
            shell=self._shell(),
        )
        return await run_process(argv, env=env, stdin=stdin, stdout=stdout, timeout_sec=timeout_sec)

    async def _agent(self, init_pid: int) -> SandboxCommands:
        """This sandbox's command agent (command_server.py), started on the first command."""
        if self._commands is not None and self._commands.open:
            return self._commands  # every command after the first: no lock to take
        async with self._agent_lock:
            if self._commands is None or not self._commands.open:
                cgroups = self._cgroup.procs if self._cgroup else []
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
                user=self._resolve_user(user) or self._image_user,
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
