"""The command server and its per-sandbox agents: sandbox commands for the cost of a posix_spawn.

Run as `python -I -S command_server.py FD OWNER_PID` (stdlib only, no site packages: it starts
in milliseconds and holds a few MB), one per env-server process. FD is one end of a
SOCK_SEQPACKET socket pair whose other end the env server holds (commands.py). Every message
is a header (a dict) and raw bytes where said (split_message), with file descriptors attached
as SCM_RIGHTS where said.

The server only makes agents: `{"id", "pid", "cgroups", "keep"}` with one descriptor, the
agent's socket, forks an agent for the sandbox whose init is `pid`; the agent answers
`{"id": 0, "status": 0}` on its socket once ready (or `"error"`). The agent, set up once:
- stays in the host's PID namespace (no process of the sandbox can see it, signal it or trace
  it; its children are born in the sandbox's: `setns(CLONE_NEWPID)` sets only that);
- joins the sandbox's cgroups (its commands' limits, and cgroup.kill ends it with them), IPC,
  UTS and mount namespaces, chroots to the init's root;
- cuts its capability bounding set to what commands may have, clears the inheritable and
  ambient sets, sets no_new_privs and makes itself non-dumpable: what capabilities.py's
  setpriv line gives every command, now inherited by each.
Then, per request on its socket, `{"id", "argv", "cwd", "env", "uid", "gid", "net", "stdin",
"stdout", "max_output"}`: stdin "inline" (the bytes after the header), "fd" (attached) or null
(/dev/null); stdout "fd" (attached) or null (captured). It joins or leaves the sandbox's network
namespace as asked, changes to `cwd` and `posix_spawn`s the command in a new session (a user
other than root: fork, switch user, exec), reads its stdout and stderr from its own pipes, and
when the command has exited and the pipes are closed answers once: `{"id", "status", "out",
"err", "cut"}` then `out` bytes of stdout and `err` bytes of stderr. Signal N reads as status
128+N; "cut" names the streams longer than max_output, with their full size (the rest was
dropped); beyond MAX_INLINE bytes the output comes in an attached memfd instead, `"memfd":
true`. So the env server's event loop sees one send and one answer per command, and no pipe.
`{"kill": id}` kills that command's process group; the answer then comes when the command
itself has exited, whatever else holds its pipes. An agent ends when its socket closes (the
sandbox stopped, or the env server died); the server ends when its own does, or its owner dies.

Per command this replaces the cgroup-joining shell, `nsenter`, `setpriv` through the host's
loader and a `cd` wrapper shell (four execs of which only the last did the command's work),
and the env server forks nothing and reads no pipe.
"""

from __future__ import annotations

import ctypes
import gc
import marshal
import os
import selectors
import signal
import socket
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
MAX_MESSAGE = 1 << 20
MAX_INLINE = 1 << 16  # output up to this size travels in the answer itself; more in a memfd
READS_PER_WAKEUP = 16
STDIN_NULL = 0  # the agent's own fd 0 is /dev/null
MAX_FD = 1 << 20
DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT)  # ignored here; commands get the default

_libc = ctypes.CDLL(None, use_errno=True)
_prctl, _capget, _capset = _libc.prctl, _libc.capget, _libc.capset


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


with open("/proc/sys/kernel/cap_last_cap") as _f:
    LAST_CAPABILITY = int(_f.read())


def bound_privileges(keep: list[int]) -> None:
    """What `setpriv --bounding-set -all,+KEEP --inh-caps -all --ambient-caps -all --no-new-privs`
    leaves a command, for this process and all it starts: a root command execs with exactly KEEP."""
    for cap in range(LAST_CAPABILITY + 1):
        if cap not in keep:
            _check(_prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"dropping capability {cap}")
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_capget(ctypes.byref(header), data), "capget")
    data[0].inheritable = data[1].inheritable = 0
    _check(_capset(ctypes.byref(header), data), "capset")
    _check(_prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clearing ambient capabilities")
    _check(_prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def _resolve(name: str, env: dict[str, str]) -> str:
    """The file `name` runs, searched on the command's PATH as execvp would."""
    if "/" in name:
        return name
    for directory in env.get("PATH", "/usr/bin:/bin").split(":"):
        candidate = f"{directory or '.'}/{name}"
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError(2, "No such file or directory")


def split_message(data: bytes) -> tuple[dict, bytes]:
    """A message is `marshal` of (header, payload bytes). Both ends run this interpreter (the
    server is started as sys.executable), and only the env server and its agents hold these
    sockets: marshal, unsafe for untrusted data, never sees any, and it is several times faster
    than JSON on every command, bytes included."""
    return marshal.loads(data)


def join_message(header: dict, payload: bytes = b"") -> bytes:
    return marshal.dumps((header, payload))


class _Loop:
    """A socket of requests, and the descriptors watched for them (each with its callback)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.selector = selectors.DefaultSelector()
        self.selector.register(sock, selectors.EVENT_READ)

    def serve(self) -> None:
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.sock:
                    if not self._receive():
                        return
                else:
                    key.data()

    def _receive(self) -> bool:
        try:
            data, fds, _, _ = socket.recv_fds(self.sock, MAX_MESSAGE, 3)
        except BlockingIOError:
            return True
        except OSError:
            return False
        for fd in fds:
            # Received descriptors are inheritable (recv_fds drops its flags argument): a command
            # would get them all, the agent's socket included, and with it the agent's powers.
            os.set_inheritable(fd, False)
        if not data:
            return False  # the owner closed its end (or exited)
        request, payload = split_message(data)
        try:
            self.handle(request, payload, fds)
        except OSError as exc:
            self.answer({"id": request.get("id"), "status": -1, "error": str(exc)})
        finally:
            for fd in fds:
                os.close(fd)
        return True

    def handle(self, request: dict, payload: bytes, fds: list[int]) -> None:
        raise NotImplementedError

    def answer(self, header: dict, *payload: bytes, fds: list[int] | None = None) -> None:
        try:
            socket.send_fds(self.sock, [join_message(header, b"".join(payload))], fds or [])
        except OSError:
            pass  # the owner is gone; the loop ends on the socket's EOF


class _CannotStart(Exception):
    """A command that cannot start: its status and message as a shell would give them."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, f"{message}\n"


class _Command:
    """One running command: its process, the pipes of its output, and what they carried."""

    def __init__(self, request_id: int, pid: int, pipes: dict[str, int], max_output: int):
        self.id = request_id
        self.max_output = max_output
        self.pid = pid
        self.pidfd = os.pidfd_open(pid)
        self.pipes = pipes  # "out"/"err" -> read end; gone at EOF
        self.output: dict[str, list[bytes]] = {name: [] for name in ("out", "err")}
        self.size = dict.fromkeys(("out", "err"), 0)
        self.status: int | None = None
        self.killed = False


class Agent(_Loop):
    """One sandbox's command starter (see the module docstring)."""

    def __init__(self, sock: socket.socket, request: dict):
        super().__init__(sock)
        self.commands: dict[int, _Command] = {}
        proc = f"/proc/{request['pid']}"
        self.host_net = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self.sandbox_net = os.open(f"{proc}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self.in_sandbox_net = False
        entered = [(os.open(f"{proc}/ns/{name}", os.O_RDONLY), kind) for name, kind in _AGENT_NAMESPACES]
        root = os.open(f"{proc}/root", os.O_RDONLY | os.O_DIRECTORY)
        for procs in request["cgroups"]:
            fd = os.open(procs, os.O_WRONLY)
            os.write(fd, b"0")
            os.close(fd)
        for fd, kind in entered:
            os.setns(fd, kind)
            os.close(fd)
        os.fchdir(root)
        os.chroot(".")
        os.close(root)
        bound_privileges(request["keep"])
        _check(_prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "making the agent non-dumpable")

    def handle(self, request: dict, payload: bytes, fds: list[int]) -> None:
        if "kill" in request:
            command = self.commands.get(request["kill"])
            if command is not None:
                command.killed = True
                try:
                    os.killpg(command.pid, signal.SIGKILL)
                except ProcessLookupError:  # not yet its own session: nothing of it has forked
                    os.kill(command.pid, signal.SIGKILL)
            return
        if request["net"] != self.in_sandbox_net:
            os.setns(self.sandbox_net if request["net"] else self.host_net, CLONE_NEWNET)
            self.in_sandbox_net = request["net"]
        given = iter(fds)
        stdin = STDIN_NULL
        if request["stdin"] == "inline":
            stdin = memfd_holding(payload)
            fds.append(stdin)  # closed with the request's descriptors
        elif request["stdin"] == "fd":
            stdin = next(given)
        pipes: dict[str, int] = {}
        ends = []
        try:
            if request["stdout"] == "fd":
                stdout = next(given)
            else:
                pipes["out"], stdout = os.pipe()
                ends.append(stdout)
            pipes["err"], stderr = os.pipe()
            ends.append(stderr)
            pid = self._start(request, [stdin, stdout, stderr])
        except BaseException as exc:
            for fd in [*pipes.values(), *ends]:
                os.close(fd)
            if not isinstance(exc, _CannotStart):
                raise
            message = exc.message.encode()
            self.answer({"id": request["id"], "status": exc.status, "out": 0, "err": len(message)}, message)
            return
        for fd in ends:
            os.close(fd)  # the command holds them now: EOF comes when it (and what it started) closes them
        command = self.commands[request["id"]] = _Command(request["id"], pid, pipes, request["max_output"])
        self.selector.register(command.pidfd, selectors.EVENT_READ, lambda: self._exited(command))
        for name, fd in pipes.items():
            os.set_blocking(fd, False)
            self.selector.register(fd, selectors.EVENT_READ, lambda n=name: self._read(command, n))

    def _start(self, request: dict, fds: list[int]) -> int:
        """The command's PID; _CannotStart where it cannot start."""
        argv, env, cwd = request["argv"], request["env"], request["cwd"]
        try:
            path = _resolve(argv[0], env)
        except FileNotFoundError as exc:
            raise _CannotStart(127, f"{argv[0]}: {exc.strerror}") from None
        if request["uid"] is not None:
            return self._fork_as_user(request, fds, path)
        try:
            os.chdir(cwd)
        except OSError as exc:
            raise _CannotStart(1, f"cd: {cwd}: {exc.strerror}") from None
        actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(fds)]
        try:
            return os.posix_spawn(path, argv, env, file_actions=actions, setsid=True, setsigdef=DEFAULT_SIGNALS)
        except OSError as exc:
            raise _CannotStart(126, f"{argv[0]}: {exc.strerror}") from None

    def _read(self, command: _Command, name: str) -> None:
        fd = command.pipes[name]
        for _ in range(READS_PER_WAKEUP):
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                return
            if not data:
                self._close_pipe(command, name)
                return
            room = command.max_output - command.size[name]
            if room > 0:
                command.output[name].append(data[:room])
            command.size[name] += len(data)

    def _close_pipe(self, command: _Command, name: str) -> None:
        fd = command.pipes.pop(name)
        self.selector.unregister(fd)
        os.close(fd)
        self._finish_if_done(command)

    def _exited(self, command: _Command) -> None:
        self.selector.unregister(command.pidfd)
        os.close(command.pidfd)
        _, status = os.waitpid(command.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        command.status = 128 - code if code < 0 else code
        if command.killed:
            # Killed on the owner's word (a timeout): what it started may hold the pipes; the
            # owner waits for this answer, not for them.
            for name in list(command.pipes):
                self._read(command, name)
                if name in command.pipes:
                    self._close_pipe(command, name)
        self._finish_if_done(command)

    def _finish_if_done(self, command: _Command) -> None:
        if command.status is None or command.pipes or self.commands.pop(command.id, None) is None:
            return
        out, err = (b"".join(command.output[name]) for name in ("out", "err"))
        header = {"id": command.id, "status": command.status, "out": len(out), "err": len(err)}
        header["cut"] = {name: size for name, size in command.size.items() if size > command.max_output}
        if len(out) + len(err) <= MAX_INLINE:
            self.answer(header, out, err)
            return
        memfd = memfd_holding(out + err)  # too large for one message: the owner reads it from a file
        try:
            self.answer({**header, "memfd": True}, fds=[memfd])
        finally:
            os.close(memfd)

    def _fork_as_user(self, request: dict, fds: list[int], path: str) -> int:
        pid = os.fork()
        if pid != 0:
            return pid
        stderr = fds[2]
        try:
            os.setsid()
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            stderr = 2
            os.setgroups([])
            gid = request["gid"] if request["gid"] is not None else request["uid"]
            os.setresgid(gid, gid, gid)
            os.setresuid(request["uid"], request["uid"], request["uid"])  # not root: every capability goes
            try:
                os.chdir(request["cwd"])
            except OSError as exc:
                os.write(2, f"cd: {request['cwd']}: {exc.strerror}\n".encode())
                os._exit(1)
            for number in DEFAULT_SIGNALS:
                signal.signal(number, signal.SIG_DFL)
            os.execve(path, request["argv"], request["env"])
        except BaseException as exc:  # noqa: BLE001  (nothing may return into the agent's loop)
            try:
                os.write(stderr, f"local sandbox: cannot start the command: {exc}\n".encode())
            finally:
                os._exit(126)
        os._exit(126)


def memfd_holding(data: bytes) -> int:
    """A file in memory with `data`, read from its start (charged to this process's cgroup)."""
    fd = os.memfd_create("harbor-env", os.MFD_CLOEXEC)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


_AGENT_NAMESPACES = (("pid", CLONE_NEWPID), ("ipc", CLONE_NEWIPC), ("uts", CLONE_NEWUTS), ("mnt", CLONE_NEWNS))


class Server(_Loop):
    """Forks an agent per sandbox."""

    def handle(self, request: dict, payload: bytes, fds: list[int]) -> None:
        (agent_socket,) = fds
        pid = os.fork()
        if pid == 0:
            _run_agent(agent_socket, request)
        # Reaped when it ends; it says itself on its socket whether it is ready.
        pidfd = os.pidfd_open(pid)
        self.selector.register(pidfd, selectors.EVENT_READ, lambda: self._reap(pid, pidfd))

    def _reap(self, pid: int, pidfd: int) -> None:
        self.selector.unregister(pidfd)
        os.close(pidfd)
        os.waitpid(pid, 0)


def _run_agent(agent_socket: int, request: dict) -> None:
    """In the forked agent: keep only its socket, set up, serve. Never returns."""
    code = 0
    try:
        os.closerange(0, agent_socket)
        os.closerange(agent_socket + 1, MAX_FD)
        for _ in range(3):  # 0-2 stay /dev/null: no descriptor of the agent's can land there
            os.open(os.devnull, os.O_RDWR)
        sock = socket.socket(fileno=agent_socket)
        sock.set_inheritable(False)
        try:
            agent = Agent(sock, request)
        except OSError as exc:
            sock.send(join_message({"id": 0, "status": -1, "error": f"cannot enter the sandbox: {exc}"}))
            os._exit(1)
        agent.answer({"id": 0, "status": 0})  # ready
        agent.serve()
    except BaseException:  # noqa: BLE001
        code = 1
    os._exit(code)


def main() -> None:
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # never outlive the env server
    if os.getppid() != int(sys.argv[2]):
        return  # the owner died before the line above
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the owner's to handle; EOF ends us
    gc.disable()  # forked agents then touch few of the pages they share with the server
    gc.freeze()
    sock = socket.socket(fileno=int(sys.argv[1]))
    sock.set_inheritable(False)
    Server(sock).serve()


if __name__ == "__main__":
    main()
