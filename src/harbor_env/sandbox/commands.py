"""Sandbox commands through the command server (command_server.py), from the event loop.

One command server per env-server process, started on first use; it forks one agent per
sandbox, on the sandbox's first command. A command then costs the event loop one `sendmsg`
(the request, with the command's stdin, stdout and stderr descriptors), readers on two pipes
and one reply: no fork or exec in this process, whose size makes `fork` costly and whose event
loop would wait for it. The server needs root on the host (it joins the sandbox's namespaces);
without root the sandbox keeps `nsenter` (local.py).

If an agent or the server dies, the commands in flight fail with LocalSandboxError (an
infrastructure error: the episode errors, it is not scored) and the next command starts a new
one.
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
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from harbor_env.errors import LocalSandboxError

SERVER_PROGRAM = Path(__file__).with_name("command_server.py")
KILL_GRACE_SEC = 5.0
AGENT_START_TIMEOUT_SEC = 30.0
_READS_PER_WAKEUP = 16


class _Channel:
    """A SOCK_SEQPACKET socket of JSON messages, with replies matched to requests by id."""

    def __init__(self, sock: socket.socket, what: str):
        self.sock: socket.socket | None = sock
        self.what = what
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.loop = asyncio.get_running_loop()
        sock.setblocking(False)
        self.loop.add_reader(sock.fileno(), self._on_message)

    @property
    def open(self) -> bool:
        return self.sock is not None

    def expect(self, message_id: int) -> asyncio.Future[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        if loop is not self.loop and self.sock is not None:
            # A new event loop (one per test, say): messages now go to this one.
            if not self.loop.is_closed():
                self.loop.remove_reader(self.sock.fileno())
            self.pending = {i: f for i, f in self.pending.items() if f.get_loop() is loop}
            loop.add_reader(self.sock.fileno(), self._on_message)
            self.loop = loop
        future = self.pending[message_id] = loop.create_future()
        return future

    def _on_message(self) -> None:
        while self.sock is not None:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.close("it exited")
                return
            message = json.loads(data)
            future = self.pending.pop(message["id"], None)
            if future is not None and not future.done():
                future.set_result(message)

    async def send(self, message: dict[str, Any], fds: list[int] | tuple[int, ...] = ()) -> None:
        data = json.dumps(message).encode()
        while True:
            if self.sock is None:
                raise LocalSandboxError(f"local sandbox: the {self.what} is gone")
            try:
                socket.send_fds(self.sock, [data], list(fds))
                return
            except BlockingIOError:
                await asyncio.sleep(0.001)  # its socket buffer is full: it is behind
            except OSError as exc:
                self.close(f"sending failed: {exc}")

    def close(self, why: str) -> None:
        """Close the socket; fail what was in flight."""
        sock, self.sock = self.sock, None
        if sock is not None:
            if not self.loop.is_closed():
                self.loop.remove_reader(sock.fileno())
            sock.close()
        pending, self.pending = self.pending, {}
        for future in pending.values():
            if not future.done() and not future.get_loop().is_closed():
                future.set_exception(
                    LocalSandboxError(f"local sandbox: the {self.what} died ({why}); the command's result is lost")
                )


@dataclass
class AgentSpec:
    """What an agent needs to enter its sandbox."""

    init_pid: int  # host PID of the sandbox's init: its namespaces and root are the commands'
    keep_capabilities: list[int]
    cgroups: list[str]  # host paths of cgroup.procs files to join


class CommandServer:
    """This process's command server (restarted when it dies)."""

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None
        self._channel: _Channel | None = None
        self._ids = itertools.count(1)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def _connect(self) -> _Channel:
        if self._channel is not None and self._channel.open and self.pid is not None:
            return self._channel
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            self._process.wait()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(SERVER_PROGRAM), str(theirs.fileno()), str(os.getpid())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
            )
        self._channel = _Channel(ours, "command server")
        return self._channel

    async def agent(self, spec: AgentSpec) -> SandboxCommands:
        """A new agent for one sandbox, ready for commands."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            commands = SandboxCommands(ours)
            ready = commands.channel.expect(0)
            request = {
                "id": next(self._ids),
                "pid": spec.init_pid,
                "keep": spec.keep_capabilities,
                "cgroups": spec.cgroups,
            }
            await self._connect().send(request, [theirs.fileno()])
        try:
            answer = await asyncio.wait_for(ready, AGENT_START_TIMEOUT_SEC)
        except TimeoutError:
            commands.close()
            raise LocalSandboxError(
                f"local sandbox: its command agent did not start within {AGENT_START_TIMEOUT_SEC:g} s"
            ) from None
        if "error" in answer:
            commands.close()
            raise LocalSandboxError(f"local sandbox: its command agent failed: {answer['error']}")
        return commands


class SandboxCommands:
    """One sandbox's agent: runs commands in the sandbox."""

    def __init__(self, sock: socket.socket):
        self.channel = _Channel(sock, "sandbox's command agent")
        self._ids = itertools.count(1)

    @property
    def open(self) -> bool:
        return self.channel.open

    def close(self) -> None:
        self.channel.close("the sandbox stopped")

    async def run(
        self,
        argv: list[str],
        *,
        cwd: str,
        env: dict[str, str],
        uid: int | None = None,
        gid: int | None = None,
        network: bool = True,
        stdin: bytes | IO[bytes] | None = None,
        stdout: IO[bytes] | None = None,
        timeout_sec: float | None = None,
    ) -> tuple[int, bytes, bytes]:
        """(exit code, stdout, stderr) of `argv` in the sandbox. `network`: in the sandbox's own
        network namespace (isolated) rather than the host's. stdin: bytes or a file; stdout: a
        file to write instead of the bytes returned."""
        loop = asyncio.get_running_loop()
        request_id = next(self._ids)
        opened: list[int] = []
        pending: list[asyncio.Future[Any]] = []
        try:
            if isinstance(stdin, bytes):
                stdin_fd, stdin_write = os.pipe()
                opened += [stdin_fd, stdin_write]
            else:
                stdin_fd = stdin.fileno() if stdin is not None else _devnull()
            if stdout is None:
                out_read, stdout_fd = os.pipe()
                opened += [out_read, stdout_fd]
            else:
                stdout_fd = stdout.fileno()
            err_read, err_write = os.pipe()
            opened += [err_read, err_write]
            reply = self.channel.expect(request_id)
            request = {"id": request_id, "argv": argv, "cwd": cwd, "env": env, "uid": uid, "gid": gid}
            await self.channel.send({**request, "net": network}, [stdin_fd, stdout_fd, err_write])
            # The agent holds its own copies now: ours would keep the pipes open.
            for fd in (stdin_fd, stdout_fd, err_write):
                if fd in opened:
                    opened.remove(fd)
                    os.close(fd)
            readers = []
            if stdout is None:
                opened.remove(out_read)
                readers.append(_read_to_end(loop, out_read))
            opened.remove(err_read)
            readers.append(_read_to_end(loop, err_read))
            pending += readers
            writer = None
            if isinstance(stdin, bytes):
                opened.remove(stdin_write)
                writer = _write_all(loop, stdin_write, stdin)
                pending.append(writer)
            try:
                answer, outputs = await asyncio.wait_for(_finish(reply, readers, writer), timeout_sec)
            except (TimeoutError, asyncio.CancelledError):
                await self._kill(request_id, reply)
                raise
        finally:
            for fd in opened:
                os.close(fd)
            for future in pending:
                future.cancel()
        if "error" in answer:
            raise LocalSandboxError(f"local sandbox: cannot start a command: {answer['error']}")
        stdout_bytes, stderr_bytes = outputs if stdout is None else (b"", outputs[0])
        return answer["status"], stdout_bytes, stderr_bytes

    async def _kill(self, request_id: int, reply: asyncio.Future[dict[str, Any]]) -> None:
        """Kill a command's process group and wait (briefly) for the agent to reap it."""
        with contextlib.suppress(LocalSandboxError):
            await self.channel.send({"id": 0, "kill": request_id})
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(reply), KILL_GRACE_SEC)
        self.channel.pending.pop(request_id, None)


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
_devnull_fds: dict[int, int] = {}


def command_server() -> CommandServer:
    """This process's command server (a forked child makes its own)."""
    server = _servers.get(os.getpid())
    if server is None:
        server = _servers[os.getpid()] = CommandServer()
    return server


def _devnull() -> int:
    """/dev/null, opened once per process (every command without stdin reads it)."""
    fd = _devnull_fds.get(os.getpid())
    if fd is None:
        fd = _devnull_fds[os.getpid()] = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    return fd
