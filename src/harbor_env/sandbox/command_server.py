"""The command server and its per-sandbox agents: sandbox commands for the cost of a posix_spawn.

Run as `python -I -S command_server.py FD OWNER_PID` (stdlib only, no site packages: it starts
in milliseconds and holds a few MB), one per env-server process. FD is one end of a
SOCK_SEQPACKET socket pair whose other end the env server holds (commands.py). Every message
is a JSON object, with file descriptors attached as SCM_RIGHTS where said.

The server only makes agents: `{"id", "pid", "cgroups", "keep"}` with one descriptor, the
agent's socket, forks an agent for the sandbox whose init is `pid` and answers
`{"id", "status": 0}` (or `"error"`). The agent, set up once:
- stays in the host's PID namespace (no process of the sandbox can see it, signal it or trace
  it; its children are born in the sandbox's: `setns(CLONE_NEWPID)` sets only that);
- joins the sandbox's cgroups (its commands' limits, and cgroup.kill ends it with them), IPC,
  UTS and mount namespaces, chroots to the init's root;
- cuts its capability bounding set to what commands may have, clears the inheritable and
  ambient sets, sets no_new_privs and makes itself non-dumpable: what capabilities.py's
  setpriv line gives every command, now inherited by each.
Then, per request on its socket, `{"id", "argv", "cwd", "env", "uid", "gid", "net"}` with the
command's stdin, stdout and stderr: it joins or leaves the sandbox's network namespace as
asked, changes to `cwd` and `posix_spawn`s the command in a new session (a user other than root:
fork, switch user, exec), and answers `{"id", "status"}` when it exits (signal N: 128+N).
`{"kill": id}` kills that command's process group. An agent ends when its socket closes (the
sandbox stopped, or the env server died); the server ends when its own does, or its owner dies.

Per command this replaces the cgroup-joining shell, `nsenter`, `setpriv` through the host's
loader and a `cd` wrapper shell (four execs of which only the last did the command's work),
and the env server forks nothing.
"""

from __future__ import annotations

import ctypes
import gc
import json
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


class _Loop:
    """A socket of requests, and the processes started for them (watched through pidfds)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.selector = selectors.DefaultSelector()
        self.selector.register(sock, selectors.EVENT_READ)
        self.children: dict[int, tuple[int, int | None]] = {}  # pid -> (pidfd, request id)

    def serve(self) -> None:
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.sock:
                    if not self._receive():
                        return
                else:
                    self._reap(key.data)

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
        request = json.loads(data)
        try:
            self.handle(request, fds)
        except OSError as exc:
            self.answer({"id": request.get("id"), "status": -1, "error": str(exc)})
        finally:
            for fd in fds:
                os.close(fd)
        return True

    def handle(self, request: dict, fds: list[int]) -> None:
        raise NotImplementedError

    def watch(self, pid: int, request_id: int | None) -> None:
        pidfd = os.pidfd_open(pid)
        self.children[pid] = (pidfd, request_id)
        self.selector.register(pidfd, selectors.EVENT_READ, pid)

    def _reap(self, pid: int) -> None:
        pidfd, request_id = self.children.pop(pid)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if request_id is not None:
            self.answer({"id": request_id, "status": 128 - code if code < 0 else code})

    def answer(self, message: dict) -> None:
        try:
            self.sock.send(json.dumps(message).encode())
        except OSError:
            pass  # the owner is gone; the loop ends on the socket's EOF


class Agent(_Loop):
    """One sandbox's command starter (see the module docstring)."""

    def __init__(self, sock: socket.socket, request: dict):
        super().__init__(sock)
        proc = f"/proc/{request['pid']}"
        self.host_net = os.open("/proc/self/ns/net", os.O_RDONLY)
        self.sandbox_net = os.open(f"{proc}/ns/net", os.O_RDONLY)
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

    def handle(self, request: dict, fds: list[int]) -> None:
        if "kill" in request:
            pid = next((p for p, (_, i) in self.children.items() if i == request["kill"]), None)
            if pid is not None:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:  # not yet its own session: nothing of it has forked
                    os.kill(pid, signal.SIGKILL)
            return
        if request["net"] != self.in_sandbox_net:
            os.setns(self.sandbox_net if request["net"] else self.host_net, CLONE_NEWNET)
            self.in_sandbox_net = request["net"]
        pid = self._start(request, fds)
        if pid is not None:
            self.watch(pid, request["id"])

    def _start(self, request: dict, fds: list[int]) -> int | None:
        argv, env, cwd = request["argv"], request["env"], request["cwd"]
        try:
            path = _resolve(argv[0], env)
        except FileNotFoundError as exc:
            return self._refuse(request, fds[2], f"{argv[0]}: {exc.strerror}", 127)
        if request["uid"] is not None:
            return self._fork_as_user(request, fds, path)
        try:
            os.chdir(cwd)
        except OSError as exc:
            return self._refuse(request, fds[2], f"cd: {cwd}: {exc.strerror}", 1)
        actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(fds)]
        try:
            return os.posix_spawn(path, argv, env, file_actions=actions, setsid=True, setsigdef=DEFAULT_SIGNALS)
        except OSError as exc:
            return self._refuse(request, fds[2], f"{argv[0]}: {exc.strerror}", 126)

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

    def _refuse(self, request: dict, stderr: int, message: str, status: int) -> None:
        """A command that cannot start: its message on its stderr, its status as a shell's."""
        os.write(stderr, f"{message}\n".encode())
        self.answer({"id": request["id"], "status": status})
        return None


_AGENT_NAMESPACES = (("pid", CLONE_NEWPID), ("ipc", CLONE_NEWIPC), ("uts", CLONE_NEWUTS), ("mnt", CLONE_NEWNS))


class Server(_Loop):
    """Forks an agent per sandbox."""

    def handle(self, request: dict, fds: list[int]) -> None:
        (agent_socket,) = fds
        pid = os.fork()
        if pid == 0:
            _run_agent(agent_socket, request)
        self.watch(pid, None)  # reaped when it ends; it says itself on its socket whether it is ready


def _run_agent(agent_socket: int, request: dict) -> None:
    """In the forked agent: keep only its socket, set up, serve. Never returns."""
    code = 0
    try:
        os.closerange(0, agent_socket)
        os.closerange(agent_socket + 1, MAX_FD)
        sock = socket.socket(fileno=agent_socket)
        sock.set_inheritable(False)
        try:
            agent = Agent(sock, request)
        except OSError as exc:
            sock.send(json.dumps({"id": 0, "status": -1, "error": f"cannot enter the sandbox: {exc}"}).encode())
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
