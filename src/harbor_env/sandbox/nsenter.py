"""Commands through `nsenter` + `setpriv`: the command path of hosts without root.

Each command is its own process chain, started from this process: the cgroup-joining shell
(limits.py), `nsenter` into the init's namespaces (the user namespace first, where the sandbox
has one), the host's `setpriv` (capabilities.py) and, for a working directory, a `cd` wrapper
shell. About 3 ms more CPU a command than the command server (bench/commands.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import IO

from harbor_env.sandbox.capabilities import privilege_drop
from harbor_env.sandbox.limits import CgroupLimits


def nsenter_argv(
    tools: dict[str, str],
    init_pid: int,
    command: list[str],
    *,
    ids: tuple[int, int] | None,
    network: bool,
    cgroup: CgroupLimits | None,
    cwd: str | None,
    shell: str,
) -> list[str]:
    """The command line that runs `command` in the sandbox (in its network namespace if `network`)."""
    if cwd is not None:
        # `cd` inside the sandbox: nsenter resolves its own --wd on the host side.
        command = [shell, "-c", 'cd -- "$1" || exit 1; shift; exec "$@"', shell, cwd, *command]
    namespaces = ["-m", "-u", "-i", "-p"] + (["-n"] if network else [])
    if os.geteuid() != 0:
        namespaces = ["-U", "--preserve-credentials", *namespaces]
    # nsenter needs the host's capabilities to join; setpriv then drops them (capabilities.py).
    drop = privilege_drop(tools["setpriv"]).argv(*(ids or (None, None)))
    argv = [tools["nsenter"], "-t", str(init_pid), *namespaces, "-r", "-w", "--", *drop, *command]
    return cgroup.wrap(argv) if cgroup is not None else argv


async def run_process(
    argv: list[str],
    *,
    env: dict[str, str],
    stdin: bytes | IO[bytes] | None,
    stdout: IO[bytes] | None,
    timeout_sec: float | None,
) -> tuple[int, bytes, bytes]:
    """(exit code, stdout, stderr) of `argv`; on timeout its whole process group is killed."""
    piped_stdin = isinstance(stdin, bytes)
    process = await asyncio.create_subprocess_exec(
        *argv,
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
