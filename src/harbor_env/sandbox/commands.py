"""Sandbox commands through the command server (command_server.py), from the event loop.

One command server per env-server process, started on first use; it forks one agent per
sandbox, on the sandbox's first command. A command then costs the event loop one `sendmsg`
(the request, with small stdin inline and a file's descriptor attached) and one answer that
carries the exit status and the output: no fork, exec or pipe in this process, whose size makes
`fork` costly and whose event loop would wait for it; the agent reads the command's pipes.
The server needs root on the host (it joins the sandbox's namespaces); without root the sandbox
keeps `nsenter` (nsenter.py).

If an agent or the server dies, the commands in flight fail with LocalSandboxError (an
infrastructure error: the episode errors, it is not scored) and the next command starts a new
one.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import itertools
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from harbor_env.errors import LocalSandboxError
from harbor_env.sandbox.command_server import MAX_INLINE, join_message, memfd_holding, split_message

SERVER_PROGRAM = Path(__file__).with_name("command_server.py")
KILL_GRACE_SEC = 5.0
# Per stream of a captured output: the rest is counted and dropped (the agent holds what it
# keeps, in the sandbox's memory cgroup, and this process then holds it too).
MAX_OUTPUT = 64 << 20
AGENT_START_TIMEOUT_SEC = 30.0
RECEIVE_SIZE = MAX_INLINE + (1 << 12)  # an answer: its header and inline output
_FD_SPACE = socket.CMSG_SPACE(array.array("i", [0]).itemsize)  # an answer carries at most one fd


Message = tuple[dict[str, Any], bytes, list[int]]  # header, payload, attached descriptors


class _Channel:
    """A SOCK_SEQPACKET socket of messages (command_server.py), answers matched to requests by id."""

    def __init__(self, sock: socket.socket, what: str):
        self.sock: socket.socket | None = sock
        self.what = what
        self.pending: dict[int, asyncio.Future[Message]] = {}
        self.loop = asyncio.get_running_loop()
        sock.setblocking(False)
        self.loop.add_reader(sock.fileno(), self._on_message)

    @property
    def open(self) -> bool:
        return self.sock is not None

    def expect(self, message_id: int) -> asyncio.Future[Message]:
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
        # One message per wakeup: the socket stays readable while more wait, and a second
        # recvmsg only to hear "would block" would cost every command a syscall.
        if self.sock is None:
            return
        try:
            data, ancillary, _, _ = self.sock.recvmsg(RECEIVE_SIZE, _FD_SPACE, socket.MSG_CMSG_CLOEXEC)
        except BlockingIOError:
            return
        except OSError:
            data, ancillary = b"", []
        fds = [fd for _, _, cmsg in ancillary for fd in array.array("i", cmsg)]
        if not data:
            for fd in fds:
                os.close(fd)
            self.close("it exited")
            return
        header, payload = split_message(data)
        future = self.pending.pop(header["id"], None)
        if future is not None and not future.done():
            future.set_result((header, payload, fds))
        else:
            for fd in fds:
                os.close(fd)

    async def send(self, header: dict[str, Any], payload: bytes = b"", fds: list[int] | tuple[int, ...] = ()) -> None:
        message = [join_message(header, payload)]
        while True:
            if self.sock is None:
                raise LocalSandboxError(f"local sandbox: the {self.what} is gone")
            try:
                if fds:
                    socket.send_fds(self.sock, message, list(fds))
                else:
                    self.sock.sendmsg(message)
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

    def start(self) -> None:
        """Start the server now; it otherwise starts on the first sandbox's first command."""
        self._connect()

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
            await self._connect().send(request, fds=[theirs.fileno()])
        try:
            answer, _, _ = await asyncio.wait_for(ready, AGENT_START_TIMEOUT_SEC)
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
        self._killing: set[asyncio.Task[None]] = set()
        self._timed_out: set[int] = set()

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
        request_id = next(self._ids)
        request = {"id": request_id, "argv": argv, "cwd": cwd, "env": env, "uid": uid, "gid": gid, "net": network}
        request["max_output"] = MAX_OUTPUT
        payload, fds, opened = b"", [], None
        if isinstance(stdin, bytes) and len(stdin) <= MAX_INLINE:
            request["stdin"], payload = "inline", stdin
        elif isinstance(stdin, bytes):
            request["stdin"] = "fd"
            opened = await asyncio.to_thread(memfd_holding, stdin)
            fds.append(opened)
        else:
            request["stdin"] = "fd" if stdin is not None else None
            fds += [stdin.fileno()] if stdin is not None else []
        request["stdout"] = "fd" if stdout is not None else None
        fds += [stdout.fileno()] if stdout is not None else []
        answer = self.channel.expect(request_id)
        try:
            await self.channel.send(request, payload, fds)
        finally:
            if opened is not None:
                os.close(opened)  # the agent holds its own copy
        # A timer rather than wait_for: the answer is awaited as it is (one loop iteration less
        # per command), and after a timeout it still comes, once the agent has reaped the command.
        timer = None
        if timeout_sec is not None:
            timer = answer.get_loop().call_later(timeout_sec, self._time_out, request_id, answer)
        try:
            header, output, received = await answer
        except asyncio.CancelledError:
            await self._kill(request_id)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if request_id in self._timed_out:
            self._timed_out.discard(request_id)
            for fd in received:
                os.close(fd)
            raise TimeoutError(f"the command ran past its {timeout_sec:g} s")
        if "error" in header:
            raise LocalSandboxError(f"local sandbox: cannot start a command: {header['error']}")
        if received:
            output = await _read_memfd(received[0], header["out"] + header["err"])
        out, err = output[: header["out"]], output[header["out"] :]
        for stream, size in header.get("cut", {}).items():
            note = (
                f"\nlocal sandbox: the command's std{stream} was cut at {request['max_output']} of its {size} bytes\n"
            )
            err += note.encode()
        return header["status"], out, err

    def _time_out(self, request_id: int, answer: asyncio.Future[Message]) -> None:
        """Past its timeout: kill the command's process group; its answer (or, should the agent not
        answer within KILL_GRACE_SEC, this) then ends it as timed out."""
        if answer.done():
            return
        self._timed_out.add(request_id)
        loop = answer.get_loop()
        self._killing.add(kill := loop.create_task(self._kill(request_id)))
        kill.add_done_callback(self._killing.discard)

        def give_up() -> None:
            if not answer.done():
                self.channel.pending.pop(request_id, None)
                answer.set_result(({}, b"", []))

        loop.call_later(KILL_GRACE_SEC, give_up)

    async def _kill(self, request_id: int) -> None:
        with contextlib.suppress(LocalSandboxError):
            await self.channel.send({"id": 0, "kill": request_id})


async def _read_memfd(fd: int, size: int) -> bytes:
    """A large output, from the memfd the agent wrote it to (in a thread: it may be many MB)."""
    try:
        return await asyncio.to_thread(os.pread, fd, size, 0)
    finally:
        os.close(fd)


_servers: dict[int, CommandServer] = {}


def command_server() -> CommandServer:
    """This process's command server (a forked child makes its own)."""
    server = _servers.get(os.getpid())
    if server is None:
        server = _servers[os.getpid()] = CommandServer()
    return server
