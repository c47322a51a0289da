"""The sandbox's init: the bubblewrap process tree that holds its namespaces between commands.

Its PID 1 is a shell (bash reaps the orphans reparented to it; dash would leave zombies) that
says it is ready, then lives until the host closes its stdin, then kills the whole namespace.
If this Python process dies, the kernel kills the init too (bubblewrap's parent-death signal),
so a crash cannot leave a sandbox, or a daemon in it, running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Callable

from harbor_env.errors import LocalSandboxError
from harbor_env.sandbox.host_support import start_failure_message

INIT_SCRIPT = "echo ready; read _; kill -KILL -1"


def namespace_args(workdir: str, path: str) -> list[str]:
    """bwrap's namespaces for a sandbox (a user namespace too where the host gives no root)."""
    args = ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net", "--hostname", "sandbox"]
    if os.geteuid() != 0:
        # Unprivileged hosts: a user namespace makes the sandbox's user root inside.
        args += ["--unshare-user", "--uid", "0", "--gid", "0"]
    return args + ["--chdir", workdir, "--setenv", "PATH", path]


class SandboxInit:
    """A running init: its bubblewrap process and the host PID of the namespace's PID 1."""

    def __init__(self, process: asyncio.subprocess.Process, pid: int):
        self.process = process
        self.pid = pid

    @property
    def exit_code(self) -> int | None:
        return self.process.returncode

    @classmethod
    async def start(
        cls,
        bwrap: list[str],
        *,
        shell: str,
        wrap: Callable[[list[str]], list[str]],
        path: str,
        timeout_sec: float,
    ) -> SandboxInit:
        """Start `bwrap` (its mounts and namespaces) with the init shell, `wrap`ped (quota, cgroups)."""
        info_read, info_write = os.pipe()
        argv = [
            *bwrap,
            # The sandbox dies with this process, whatever its commands hold open: the kernel
            # sends its init SIGKILL when the owner exits (stdin EOF is the second way).
            "--die-with-parent",
            "--as-pid-1",  # our shell is PID 1: signals from inside cannot kill it
            "--info-fd",
            str(info_write),
            "--",
            shell,
            "-c",
            INIT_SCRIPT,
        ]
        try:
            process = await asyncio.create_subprocess_exec(
                *wrap(argv),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(info_write,),
                env={"PATH": path},
            )
        finally:
            os.close(info_write)
        try:
            assert process.stdout is not None and process.stderr is not None
            line = await asyncio.wait_for(process.stdout.readline(), timeout_sec)
            if line.strip() != b"ready":
                stderr = b""
                with contextlib.suppress(asyncio.TimeoutError):
                    stderr = await asyncio.wait_for(process.stderr.read(), 2)
                raise LocalSandboxError(start_failure_message(stderr.decode(errors="replace").strip()))
            info = json.loads(os.read(info_read, 65536) or b"{}")
            return cls(process, int(info["child-pid"]))
        except TimeoutError:
            raise LocalSandboxError(
                f"local sandbox: did not start within {timeout_sec} s "
                "(raise start_timeout_sec if the host is overloaded)"
            ) from None
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise
        finally:
            os.close(info_read)

    async def stop(self) -> None:
        """Kill PID 1 of the namespace: the kernel kills every other process in it."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
