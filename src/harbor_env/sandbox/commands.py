"""Sandbox commands through the command server (command_server.py), from the event loop.

One command server per env-server process, started on first use. A command costs the event
loop one `sendmsg` (the request and the command's stdin/stdout/stderr descriptors), readers
on two pipes and one reply: no fork or exec in this process, whose size makes `fork` costly
and whose event loop would wait for it. The server needs root on the host (it joins the
sandbox's namespaces); without root the sandbox keeps `nsenter` (local.py).

If the server dies, the commands in flight fail with LocalSandboxError (an infrastructure
error: the episode errors, it is not scored) and the next command starts a new server.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from harbor_env.errors import LocalSandboxError

SERVER_PROGRAM = Path(__file__).with_name("command_server.py")
KILL_GRACE_SEC = 5.0
_READS_PER_WAKEUP = 16


@dataclass
class Command:
    """One command to run in a sandbox, as the server needs it."""

    init_pid: int  # host PID of the sandbox's init: its namespaces and root are the command's
    argv: list[str]  # argv[0] is an absolute path inside the sandbox
    cwd: str
    env: dict[str, str]
    namespaces: list[str]  # of "ipc", "uts", "net", "mnt"
    keep_capabilities: list[int]
    cgroups: list[str] = field(default_factory=list)  # host paths of cgroup.procs files to join
    uid: int | None = None
    gid: int | None = None


class CommandServer:
    """The env server's connection to its command server (restarted if it dies)."""

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._process: subprocess.Popen | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def _connect(self) -> socket.socket:
        loop = asyncio.get_running_loop()
        if self._sock is not None and self._loop is not loop:
            # A new event loop (one per test, say): replies now go to this one. The server is
            # one per process; commands of an earlier loop cannot be waited for any more.
            assert self._loop is not None
            if not self._loop.is_closed():
                self._loop.remove_reader(self._sock.fileno())
            self._pending = {i: f for i, f in self._pending.items() if f.get_loop() is loop}
            loop.add_reader(self._sock.fileno(), self._on_reply)
            self._loop = loop
        if self._sock is None:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            with theirs:
                self._process = subprocess.Popen(
                    [sys.executable, "-I", "-S", str(SERVER_PROGRAM), str(theirs.fileno()), str(os.getpid())],
                    pass_fds=(theirs.fileno(),),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    close_fds=True,
                )
            ours.setblocking(False)
            loop.add_reader(ours.fileno(), self._on_reply)
            self._sock, self._loop = ours, loop
        return self._sock

    def _on_reply(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(1 << 16)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._lost("it exited")
                return
            reply = json.loads(data)
            future = self._pending.pop(reply["id"], None)
            if future is not None and not future.done():
                future.set_result(reply)

    def _lost(self, why: str) -> None:
        """Forget the server; fail what was in flight."""
        sock, self._sock = self._sock, None
        if sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(sock.fileno())
            sock.close()
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self._process.wait(timeout=1)
                why = f"{why}, exit code {code}"
            self._process = None
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done() and not future.get_loop().is_closed():
                future.set_exception(
                    LocalSandboxError(f"local sandbox: the command server died ({why}); the command's result is lost")
                )

    def close(self) -> None:
        self._lost("closed")

    async def _send(self, message: dict[str, Any], fds: list[int] = ()) -> None:
        data = json.dumps(message).encode()
        while True:
            sock = self._connect()
            try:
                socket.send_fds(sock, [data], list(fds))
                return
            except BlockingIOError:
                await asyncio.sleep(0.001)  # the server is behind by a full socket buffer
            except OSError as exc:
                self._lost(f"sending failed: {exc}")
                if "kill" in message:
                    return
                raise LocalSandboxError(f"local sandbox: the command server is unreachable ({exc})") from None

    async def run(
        self,
        command: Command,
        *,
        stdin: bytes | IO[bytes] | None = None,
        stdout: IO[bytes] | None = None,
        timeout_sec: float | None = None,
    ) -> tuple[int, bytes, bytes]:
        """(exit code, stdout, stderr). stdin: bytes or a file; stdout: a file to write instead."""
        loop = asyncio.get_running_loop()
        request_id = next(self._ids)
        opened: list[int] = []
        readers: list[asyncio.Future[bytes]] = []
        writer: asyncio.Future[None] | None = None
        try:
            if isinstance(stdin, bytes):
                stdin_read, stdin_write = os.pipe()
                opened += [stdin_read, stdin_write]
                stdin_fd = stdin_read
            elif stdin is not None:
                stdin_fd = stdin.fileno()
            else:
                stdin_fd = os.open(os.devnull, os.O_RDONLY)
                opened.append(stdin_fd)
            if stdout is None:
                out_read, stdout_fd = os.pipe()
                opened += [out_read, stdout_fd]
            else:
                stdout_fd = stdout.fileno()
            err_read, err_write = os.pipe()
            opened += [err_read, err_write]
            reply = loop.create_future()
            self._pending[request_id] = reply
            await self._send(
                {
                    "id": request_id,
                    "pid": command.init_pid,
                    "argv": command.argv,
                    "cwd": command.cwd,
                    "env": command.env,
                    "namespaces": command.namespaces,
                    "keep": command.keep_capabilities,
                    "cgroups": command.cgroups,
                    "uid": command.uid,
                    "gid": command.gid,
                },
                [stdin_fd, stdout_fd, err_write],
            )
            # The server holds its own copies now: ours would keep the pipes open.
            for fd in (stdin_fd, stdout_fd, err_write):
                if fd in opened:
                    opened.remove(fd)
                    os.close(fd)
            if stdout is None:
                opened.remove(out_read)
                readers.append(_read_to_end(loop, out_read))
            opened.remove(err_read)
            readers.append(_read_to_end(loop, err_read))
            if isinstance(stdin, bytes):
                opened.remove(stdin_write)
                writer = _write_all(loop, stdin_write, stdin)
            try:
                done = await asyncio.wait_for(_finish(reply, readers, writer), timeout_sec)
            except (TimeoutError, asyncio.CancelledError):
                await self._kill(request_id, reply)
                raise
            answer, outputs = done
        finally:
            for fd in opened:
                os.close(fd)
            for pending in [*readers, *([writer] if writer else [])]:
                pending.cancel()
        if "error" in answer:
            raise LocalSandboxError(f"local sandbox: cannot start a command: {answer['error']}")
        stdout_bytes, stderr_bytes = outputs if stdout is None else (b"", outputs[0])
        return answer["status"], stdout_bytes, stderr_bytes

    async def _kill(self, request_id: int, reply: asyncio.Future[dict[str, Any]]) -> None:
        """Kill a command's process group and wait (briefly) for the server to reap it."""
        await self._send({"kill": request_id})
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(reply), KILL_GRACE_SEC)
        self._pending.pop(request_id, None)


async def _finish(
    reply: asyncio.Future[dict[str, Any]], readers: list[asyncio.Future[bytes]], writer: asyncio.Future[None] | None
) -> tuple[dict[str, Any], list[bytes]]:
    answer = await asyncio.shield(reply)  # a timeout must leave it pending: _kill waits for it
    outputs = [await reader for reader in readers]  # EOF: the command and what it started closed them
    if writer is not None:
        await writer
    return answer, outputs


def _read_to_end(loop: asyncio.AbstractEventLoop, fd: int) -> asyncio.Future[bytes]:
    """All a pipe carries until EOF, read by the event loop without a transport per pipe."""
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    future: asyncio.Future[bytes] = loop.create_future()

    def finish() -> None:
        loop.remove_reader(fd)
        os.close(fd)
        if not future.done():
            future.set_result(b"".join(chunks))

    def on_readable() -> None:
        for _ in range(_READS_PER_WAKEUP):
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                finish()
                return
            chunks.append(data)

    loop.add_reader(fd, on_readable)
    future.add_done_callback(lambda f: finish() if f.cancelled() else None)
    return future


def _write_all(loop: asyncio.AbstractEventLoop, fd: int, data: bytes) -> asyncio.Future[None]:
    """Write `data` to a pipe and close it; a reader that went away ends the write."""
    os.set_blocking(fd, False)
    view = memoryview(data)
    future: asyncio.Future[None] = loop.create_future()

    def finish() -> None:
        loop.remove_writer(fd)
        with contextlib.suppress(OSError):
            os.close(fd)
        if not future.done():
            future.set_result(None)

    def on_writable() -> None:
        nonlocal view
        try:
            while view:
                view = view[os.write(fd, view) :]
        except BlockingIOError:
            return
        except OSError:  # EPIPE: the command does not read its stdin
            pass
        finish()

    loop.add_writer(fd, on_writable)
    future.add_done_callback(lambda f: finish() if f.cancelled() else None)
    return future


_servers: dict[int, CommandServer] = {}


def command_server() -> CommandServer:
    """This process's command server connection (a forked child makes its own)."""
    server = _servers.get(os.getpid())
    if server is None:
        server = _servers[os.getpid()] = CommandServer()
    return server
