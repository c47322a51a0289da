"""The command server: starts sandbox commands by one fork of a small process, on the host.

Run as `python -I -S command_server.py FD OWNER_PID` (stdlib only, no site packages: it starts in
milliseconds and holds a few MB). FD is one end of a SOCK_SEQPACKET socket pair; the env
server (commands.py) holds the other. One message per request: a JSON header and, as
SCM_RIGHTS, the command's stdin, stdout and stderr. For each request the server

1. points its children's PID namespace at the sandbox's (`setns(CLONE_NEWPID)` only changes
   where children are born), forks once, and points it back;
2. in the child: joins the sandbox's cgroups (writes itself to `cgroup.procs`), its IPC, UTS,
   (network, when isolated) and mount namespaces, chroots to the init's root, changes to the
   working directory, starts a new session, drops privileges as capabilities.py describes
   (bounding set, no inheritable or ambient capabilities, no_new_privs, then the user), and
   execs the command;
3. answers `{"id": N, "status": CODE}` when the child exits (a signal N reads as 128+N).
`{"kill": N}` kills request N's process group. The server exits when the socket closes (its
owner exited) or its parent dies, and never blocks on one command: it waits on pidfds.

This replaces, per command, the cgroup-joining shell, `nsenter`, `setpriv` through the host's
loader and a `cd` wrapper shell: four execs of which only the last did the command's work.
"""

from __future__ import annotations

import ctypes
import json
import os
import selectors
import signal
import socket
import sys
import warnings  # noqa: F401  (os.execvpe imports it lazily: after the chroot it would not be found)

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
MAX_MESSAGE = 1 << 20
NAMESPACES = {"ipc": CLONE_NEWIPC, "uts": CLONE_NEWUTS, "net": CLONE_NEWNET, "mnt": CLONE_NEWNS}

_libc = ctypes.CDLL(None, use_errno=True)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _last_capability() -> int:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        return int(f.read())


LAST_CAPABILITY = _last_capability()  # read on the host, once


def drop_privileges(keep: list[int], uid: int | None, gid: int | None) -> None:
    """What `setpriv --bounding-set -all,+KEEP --inh-caps -all --ambient-caps -all --no-new-privs
    [--reuid U --regid G --clear-groups]` does."""
    for cap in range(LAST_CAPABILITY + 1):
        if cap not in keep:
            _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"dropping capability {cap}")
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(header), data), "capget")
    data[0].inheritable = data[1].inheritable = 0
    _check(_libc.capset(ctypes.byref(header), data), "capset")
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clearing ambient capabilities")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    if uid is not None:
        os.setgroups([])
        os.setresgid(gid if gid is not None else uid, gid if gid is not None else uid, gid if gid is not None else uid)
        os.setresuid(uid, uid, uid)  # from root to another user: the kernel clears every capability


def _child(request: dict, fds: list[int], namespace_fds: list[tuple[int, int]], root_fd: int) -> None:
    """In the forked child: enter the sandbox and exec. Never returns."""
    stderr = fds[2]
    try:
        for procs in request.get("cgroups", []):
            with open(procs, "w") as f:
                f.write("0")
        for fd, kind in namespace_fds:
            os.setns(fd, kind)
        os.fchdir(root_fd)
        os.chroot(".")
        try:
            os.chdir(request["cwd"])
        except OSError as exc:
            os.write(stderr, f"cd: {request['cwd']}: {exc.strerror}\n".encode())
            os._exit(1)
        os.setsid()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        # Nothing else crosses into the command: not the server's socket (a command that could
        # write requests would choose its own capabilities), not the received originals (a
        # daemon holding them would keep the output pipes open forever).
        os.closerange(3, 1 << 20)
        stderr = 2
        drop_privileges(request["keep"], request.get("uid"), request.get("gid"))
        for ignored in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT):  # ignored here, default for commands
            signal.signal(ignored, signal.SIG_DFL)
        argv = request["argv"]
        try:
            os.execvpe(argv[0], argv, request["env"])  # PATH as the command's environment says
        except OSError as exc:
            os.write(2, f"{argv[0]}: {exc.strerror}\n".encode())
            os._exit(127)
    except BaseException as exc:  # noqa: BLE001  (nothing may return into the server's loop)
        try:
            os.write(stderr, f"local sandbox: cannot start the command: {exc}\n".encode())
        finally:
            os._exit(126)
    os._exit(126)


class Server:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.selector = selectors.DefaultSelector()
        self.selector.register(sock, selectors.EVENT_READ)
        self.children: dict[int, tuple[int, int]] = {}  # request id -> (pid, pidfd)
        self.own_pid_namespace = os.open("/proc/self/ns/pid", os.O_RDONLY)

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
        if not data:
            return False  # the owner closed its end (or exited)
        request = json.loads(data)
        if "kill" in request:
            entry = self.children.get(request["kill"])
            if entry is not None:
                try:
                    os.killpg(entry[0], signal.SIGKILL)
                except ProcessLookupError:  # not yet its own session: nothing of it has forked
                    os.kill(entry[0], signal.SIGKILL)
            return True
        try:
            self._start(request, fds)
        except OSError as exc:  # the sandbox is gone, or its init exited
            self._answer(request["id"], -1, f"{exc}")
        finally:
            for fd in fds:
                os.close(fd)
        return True

    def _start(self, request: dict, fds: list[int]) -> None:
        proc = f"/proc/{request['pid']}"
        opened = []
        try:
            pid_namespace = os.open(f"{proc}/ns/pid", os.O_RDONLY)
            opened.append(pid_namespace)
            namespace_fds = []
            for name in request["namespaces"]:
                namespace_fds.append((os.open(f"{proc}/ns/{name}", os.O_RDONLY), NAMESPACES[name]))
                opened.append(namespace_fds[-1][0])
            root_fd = os.open(f"{proc}/root", os.O_RDONLY | os.O_DIRECTORY)
            opened.append(root_fd)
            os.setns(pid_namespace, CLONE_NEWPID)
            pid = -1
            try:
                pid = os.fork()
                if pid == 0:
                    _child(request, fds, namespace_fds, root_fd)
            finally:
                if pid != 0:
                    os.setns(self.own_pid_namespace, CLONE_NEWPID)
        finally:
            for fd in opened:
                os.close(fd)
        pidfd = os.pidfd_open(pid)
        self.children[request["id"]] = (pid, pidfd)
        self.selector.register(pidfd, selectors.EVENT_READ, request["id"])

    def _reap(self, request_id: int) -> None:
        pid, pidfd = self.children.pop(request_id)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        self._answer(request_id, 128 - code if code < 0 else code)

    def _answer(self, request_id: int, status: int, error: str | None = None) -> None:
        message = {"id": request_id, "status": status}
        if error is not None:
            message["error"] = error
        try:
            self.sock.send(json.dumps(message).encode())
        except OSError:
            pass  # the owner is gone; the loop ends on the socket's EOF


def main() -> None:
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # never outlive the env server
    if os.getppid() != int(sys.argv[2]):
        return  # the owner died before the line above
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the owner's to handle; EOF ends us
    sock = socket.socket(fileno=int(sys.argv[1]))
    sock.set_inheritable(False)
    Server(sock).serve()


if __name__ == "__main__":
    main()
