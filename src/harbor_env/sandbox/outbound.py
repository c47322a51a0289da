"""Outbound network for a sandbox's own network namespace, through slirp4netns.

A task whose network policy is public must reach the internet, but not the host: the host's
network namespace would give it the env server's port, the inference server and every service
on the host's loopback, and the host's abstract Unix sockets. So the sandbox keeps its own
namespace, and slirp4netns (a user-mode TCP/IP stack, the one rootless podman uses) connects
it to the outside as a NAT'd interface `tap0` (10.0.2.100, gateway 10.0.2.2, DNS 10.0.2.3), with
`--disable-host-loopback`: the host's 127.0.0.1 is not reachable through the gateway.

slirp4netns runs on the host as a child of this process and ends when the pipe of its exit
descriptor closes: when the sandbox stops, or when this process dies (the kernel closes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from pathlib import Path

from harbor_env.errors import LocalSandboxError

READY_TIMEOUT_SEC = 10.0


def slirp_tool() -> str | None:
    return shutil.which("slirp4netns")


class OutboundNetwork:
    """slirp4netns attached to one sandbox's network namespace (`attach`, then `detach`)."""

    def __init__(self, process: asyncio.subprocess.Process, exit_writer: int):
        self._process = process
        self._exit_writer = exit_writer

    @classmethod
    async def attach(cls, tool: str, pid: int, *, rootless: bool, log: Path) -> OutboundNetwork:
        """Connect the network namespace of `pid` (a process in the sandbox) to the outside;
        slirp4netns writes its messages to `log` (read when it fails)."""
        ready_reader, ready_writer = os.pipe()
        exit_reader, exit_writer = os.pipe()
        argv = [tool, "--configure", "--mtu=65520", "--disable-host-loopback"]
        argv += [f"--ready-fd={ready_writer}", f"--exit-fd={exit_reader}"]
        if rootless:  # the namespace belongs to bubblewrap's user namespace: join it first
            argv.append(f"--userns-path=/proc/{pid}/ns/user")
        argv += [str(pid), "tap0"]
        try:
            with log.open("wb") as messages:
                process = await asyncio.create_subprocess_exec(
                    *argv,
                    pass_fds=(ready_writer, exit_reader),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=messages,
                    stderr=messages,
                )
        except BaseException:
            for fd in (ready_reader, exit_writer):
                os.close(fd)
            raise
        finally:
            os.close(ready_writer)
            os.close(exit_reader)
        network = cls(process, exit_writer)
        try:
            ready = await asyncio.wait_for(asyncio.to_thread(os.read, ready_reader, 1), READY_TIMEOUT_SEC)
        except BaseException:
            await network.detach()
            raise
        finally:
            os.close(ready_reader)
        if ready != b"1":
            await network.detach()
            messages = log.read_text(errors="replace").strip()
            raise LocalSandboxError(
                f"local sandbox: slirp4netns could not connect the sandbox's network: {messages[-300:]}"
            )
        return network

    async def detach(self) -> None:
        """Disconnect: slirp4netns exits once its exit descriptor's pipe closes."""
        with contextlib.suppress(OSError):
            os.close(self._exit_writer)
        try:
            await asyncio.wait_for(self._process.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            await self._process.wait()
