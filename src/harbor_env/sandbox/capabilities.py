"""What a command in the sandbox may do: no mount, remount, cgroup, module or device powers.

Commands enter the sandbox through the command server (command_server.py), or with `nsenter`
on hosts without root; both need the host's capabilities to join the namespaces, and right
after that the server (with prctl and capset) or `setpriv` (util-linux) cuts the capability bounding set to
Docker's default set minus MKNOD, NET_RAW, AUDIT_WRITE and SETFCAP, clears the inheritable and
ambient sets and sets no_new_privs (no setuid binary can give them back), then switches user
if asked. Without CAP_SYS_ADMIN there is no mount, remount, cgroup hierarchy or namespace
escape; without CAP_SYS_MODULE no module; without CAP_MKNOD no raw disk.

`setpriv` is the host's binary, bound read-only into the sandbox with its shared libraries and
run through the host's dynamic loader: it works the same on the host's root and on an image
root file system that has no setpriv or another libc.

The sandbox's init (its PID 1) keeps one capability that commands lack (CAP_AUDIT_READ, which
grants nothing here): a process may ptrace another or open its descriptors only when its own
capabilities cover the other's, so no command can take over or hold open the init's pipes.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Docker's default capability set without MKNOD (device nodes: raw disks), NET_RAW,
# AUDIT_WRITE and SETFCAP (file capabilities are ignored under no_new_privs anyway).
COMMAND_CAPABILITIES = (
    "chown",
    "dac_override",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "net_bind_service",
    "sys_chroot",
)
INIT_CAPABILITY = "CAP_AUDIT_READ"
# Capability numbers (linux/capability.h) of the names above, for the command server's prctl calls.
_CAPABILITY_NUMBERS = {
    "chown": 0,
    "dac_override": 1,
    "fowner": 3,
    "fsetid": 4,
    "kill": 5,
    "setgid": 6,
    "setuid": 7,
    "setpcap": 8,
    "net_bind_service": 10,
    "sys_chroot": 18,
}
HELPER_DIR = "/.harbor-env"  # where setpriv and its libraries appear inside the sandbox
_LDD_LINE = re.compile(r"^\s*(?:\S+\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)")


@dataclass(frozen=True)
class PrivilegeDrop:
    """Runs a sandbox command through the host's setpriv, bound into the sandbox."""

    files: tuple[tuple[str, Path], ...]  # (name in HELPER_DIR, host file): setpriv, its libraries
    loader: str | None  # name of the host's dynamic loader, when setpriv is dynamically linked

    def bwrap_args(self) -> list[str]:
        args: list[str] = []
        for name, path in self.files:
            args += ["--ro-bind", str(path), f"{HELPER_DIR}/{name}"]
        return args

    def argv(self, uid: int | None = None, gid: int | None = None) -> list[str]:
        """The command prefix (ends with `--`) that drops privileges, then becomes uid/gid."""
        setpriv = [f"{HELPER_DIR}/setpriv"]
        if self.loader is not None:
            setpriv = [f"{HELPER_DIR}/{self.loader}", "--library-path", HELPER_DIR, *setpriv]
        user = (
            []
            if uid is None
            else ["--reuid", str(uid), "--regid", str(gid if gid is not None else uid), "--clear-groups"]
        )
        bounding = ",".join(["-all", *(f"+{c}" for c in COMMAND_CAPABILITIES)])
        return [
            *setpriv,
            *user,
            "--bounding-set",
            bounding,
            "--inh-caps",
            "-all",
            "--ambient-caps",
            "-all",
            "--no-new-privs",
            "--",
        ]


def command_capability_numbers() -> list[int]:
    """COMMAND_CAPABILITIES as numbers: the bounding set the command server leaves commands."""
    return [_CAPABILITY_NUMBERS[name] for name in COMMAND_CAPABILITIES]


def init_bwrap_args() -> list[str]:
    """Capabilities of the sandbox's init: with root on the host bubblewrap would keep them all."""
    if os.geteuid() != 0:
        return []  # bubblewrap gives an unprivileged sandbox none
    return ["--cap-drop", "ALL", "--cap-add", INIT_CAPABILITY]


@functools.cache
def privilege_drop(setpriv: str) -> PrivilegeDrop:
    """setpriv and the shared libraries it needs (from ldd), found once per process."""
    binary = Path(setpriv).resolve()
    try:
        listing = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        listing = ""
    libraries = [Path(m.group(1)) for line in listing.splitlines() if (m := _LDD_LINE.match(line))]
    loader = next((lib.name for lib in libraries if lib.name.startswith("ld-")), None)
    files = {"setpriv": binary}
    for lib in libraries:
        files.setdefault(lib.name, lib)
    return PrivilegeDrop(files=tuple(files.items()), loader=loader)


def find_setpriv() -> str | None:
    return shutil.which("setpriv")
