"""The local sandbox on hosts that cannot run it (clear errors) and against an agent that tries to
get out of it or keep it alive (issue 14's hardening)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import (
    REPO,
    make_sandbox,
    running,
    write_task,
)

from harbor_env.errors import LocalSandboxError

# ---------------------------------------------------------------------------- bad setups


def test_missing_rootfs_is_a_clear_error(work: Path) -> None:
    with pytest.raises(LocalSandboxError, match=r"rootfs .*does-not-exist is not a directory"):
        make_sandbox(write_task(work), work, rootfs=str(work / "does-not-exist"))


def test_missing_dockerfile_is_a_clear_error(work: Path) -> None:
    task = write_task(work)
    (task / "environment" / "Dockerfile").unlink()
    with pytest.raises(FileNotFoundError, match=r"environment/Dockerfile not found"):
        make_sandbox(task, work)


def test_unknown_option_names_the_allowed_ones(work: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown environment kwargs \['root_fs'\]; allowed: .*'rootfs'"):
        make_sandbox(write_task(work), work, root_fs="/x")


async def test_missing_bubblewrap_is_a_clear_error(work: Path, monkeypatch) -> None:
    sandbox = make_sandbox(write_task(work), work)
    monkeypatch.setenv("PATH", str(work / "empty-bin"))
    with pytest.raises(
        LocalSandboxError, match=r"`bwrap` not found on PATH; install it \(Debian/Ubuntu: apt-get install bubblewrap"
    ):
        await sandbox.start(force_build=False)
    assert not any((work / "sandboxes").glob("*")) if (work / "sandboxes").exists() else True


UNPRIVILEGED_START = """
import asyncio, sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from conftest import make_sandbox
from harbor_env.errors import LocalSandboxError

async def main():
    sandbox = make_sandbox(Path({task!r}), Path({work!r}), "unprivileged")
    try:
        await sandbox.start(force_build=False)
    except LocalSandboxError as exc:
        print("ERROR:", exc)
        return
    try:
        result = await sandbox.exec("id -u; tmux new -d -s t && tmux ls")
        print("STARTED", result.return_code, result.stdout)
        await sandbox.exec("echo 42 > /app/kept; echo x > /root/dropped; "
                           "nohup setsid sh -c 'while :; do echo 1 > /logs/verifier/reward.txt; sleep 0.01; done' >/dev/null 2>&1 &")
        mounted = await sandbox.exec("mount -t tmpfs x /tmp && echo MOUNTED; grep CapBnd /proc/self/status")
        await sandbox.prepare_verifier()
        await asyncio.sleep(0.2)
        after = await sandbox.exec("echo verifier: $(ls /logs/verifier); cat /app/kept; ls /root")
        print("MOUNT", mounted.stdout, "AFTER", after.stdout)
    finally:
        await sandbox.stop(delete=True)
asyncio.run(main())
"""


def _run_as_unprivileged_user(work: Path, nested_namespaces: int) -> subprocess.CompletedProcess:
    """Start a sandbox from a process whose user is not root (uid 1000 in a user namespace).

    `nested_namespaces` user namespaces are stacked above it first; the kernel allows 32
    levels, so 32 above the uid-1000 one leave bubblewrap no room for its own: a real "namespaces unusable" host.
    """
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-U", "-r", "true"]).returncode != 0:
        pytest.skip("unshare cannot create user namespaces here")
    task = write_task(work)
    script = UNPRIVILEGED_START.format(tests=str(REPO / "tests"), task=str(task), work=str(work))
    command = ["unshare", "-U", "--map-user=1000", "--map-group=1000", os.sys.executable, "-c", script]
    for _ in range(nested_namespaces):
        command = ["unshare", "-U", "-r", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_runs_without_root(work: Path) -> None:
    """GPU clusters often give no root: bubblewrap then makes its own user namespace."""
    result = _run_as_unprivileged_user(work, nested_namespaces=0)
    assert "STARTED 0 0\nt: 1 windows" in result.stdout, result.stdout + result.stderr
    # Without root too: no mount, a lingering writer stopped, only WORKDIR reaches the verifier.
    assert "MOUNTED" not in result.stdout and f"CapBnd:\t{BOUNDING_SET}" in result.stdout, result.stdout
    assert "AFTER verifier:\n42\n" in result.stdout, result.stdout


def test_unusable_namespaces_are_a_clear_error(work: Path) -> None:
    result = _run_as_unprivileged_user(work, nested_namespaces=32)
    assert "Traceback" not in result.stderr, result.stderr
    assert "ERROR: local sandbox: bubblewrap failed to start the sandbox" in result.stdout, (
        result.stdout + result.stderr
    )
    assert "user.max_user_namespaces" in result.stdout
    assert not any((work / "sandboxes").iterdir())


# ---------------------------------------------------------------------------- hardening (issue 14)

# setpriv's bounding set, as /proc/PID/status shows it: Docker's defaults less MKNOD, NET_RAW,
# AUDIT_WRITE and SETFCAP.
BOUNDING_SET = "00000000000405fb"


async def test_commands_cannot_mount_or_take_over_the_init(work: Path) -> None:
    async with running(make_sandbox(write_task(work), work)) as sandbox:
        status = await sandbox.exec("grep -E 'CapBnd|CapAmb|NoNewPrivs' /proc/self/status")
        assert f"CapBnd:\t{BOUNDING_SET}" in status.stdout and "CapAmb:\t0000000000000000" in status.stdout
        assert "NoNewPrivs:\t1" in status.stdout
        for attempt in (
            "mount -t tmpfs none /tmp",
            "mount -o remount,rw /usr",
            "mount --bind /tmp /tests",
            "mknod /tmp/disk b 8 0",
            "unshare -m true",
            "echo x > /sys/kernel/uevent_helper",
        ):
            result = await sandbox.exec(attempt)
            assert result.return_code != 0, attempt
        if os.geteuid() == 0:  # the init keeps a capability commands lack: no ptrace, no held pipe
            held = await sandbox.exec("exec 9>/proc/1/fd/0 && echo HELD")
            assert held.return_code != 0 and "HELD" not in (held.stdout or "")
        # What tasks do as root still works.
        assert (
            await sandbox.exec("touch /app/f && chown 1000:1000 /app/f && chmod 600 /app/f && stat -c %u /app/f")
        ).stdout == "1000\n"


async def test_env_path_expands_as_docker_does(work: Path) -> None:
    task = write_task(
        work, dockerfile="FROM debian:bookworm-slim\nWORKDIR /app\nENV PATH=/app/bin:$PATH\nENV B=${PATH}-x\n"
    )
    async with running(make_sandbox(task, work)) as sandbox:
        result = await sandbox.exec('echo "$PATH"; tmux -V')
        assert result.return_code == 0, result
        assert result.stdout.splitlines()[0] == "/app/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


async def test_a_binary_dockerfile_is_named(work: Path) -> None:
    task = write_task(work)
    (task / "environment" / "Dockerfile").write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe")
    with pytest.raises(ValueError, match=r"environment/Dockerfile: not a text file \(byte 8 is not UTF-8\)"):
        await make_sandbox(task, work).start(force_build=False)


@pytest.mark.parametrize("quota", [False, True], ids=["host-root", "storage-quota"])
async def test_a_fresh_verifier_holds_only_the_agents_workdir(quota: bool, work: Path) -> None:
    if quota and os.geteuid() != 0:
        pytest.skip("the storage quota needs root on the host")
    task = write_task(
        work,
        task_toml="[environment]\nstorage_mb = 64\n" if quota else "",
        files={"environment/seed.txt": "seed\n"},
        dockerfile="FROM debian:bookworm-slim\nWORKDIR /app\nCOPY seed.txt /app/\n",
    )
    async with running(make_sandbox(task, work)) as sandbox:
        setup = "rm /app/seed.txt; echo 42 > /app/answer; mkdir -p /app/d/e; ln -s /etc/passwd /app/link; mkfifo /app/fifo; "
        setup += (
            "echo x > /root/.planted; echo x > /tmp/planted; echo x > /logs/agent/log; tmux new -d -s t 'sleep 1000'"
        )
        assert (await sandbox.exec(setup)).return_code == 0
        inode = (await sandbox.exec("stat -c %i /app/answer")).stdout
        old_dir = sandbox.sandbox_dir
        await sandbox.prepare_verifier()
        assert sandbox.sandbox_dir != old_dir and not old_dir.exists()
        # On the host's disk WORKDIR is renamed into the verifier's root (nothing is read or
        # copied, whatever its size); under a quota only the sandbox sees it, and tar copies it.
        assert ((await sandbox.exec("stat -c %i /app/answer")).stdout == inode) is not quota
        listing = await sandbox.exec(
            "ls -A /app /root /tmp; cat /app/answer; readlink /app/link; ps -e | grep -c sleep"
        )
        # The FIFO is gone: special files in WORKDIR never reach the tests (verifier_isolation.py).
        assert listing.stdout.split("\n\n")[0] == "/app:\nanswer\nd\nlink", listing.stdout
        assert ".planted" not in listing.stdout and "planted" not in listing.stdout
        assert "42\n/etc/passwd\n0\n" in listing.stdout
        # Its only writable log folder bound to the trial is the verifier's (under a quota none is
        # bound: Harbor downloads the verifier's, and has downloaded the agent's before).
        wrote = await sandbox.exec("echo x > /logs/agent/other")
        assert (wrote.return_code != 0) is not quota
        assert not (sandbox.trial_paths.agent_dir / "other").exists()
        assert (await sandbox.exec("echo 1 > /logs/verifier/reward.txt")).return_code == 0


async def test_a_sparse_file_reaches_the_fresh_verifier_as_its_data(work: Path) -> None:
    """Under a quota WORKDIR reaches the verifier's sandbox through a tar archive on the host's
    disk. A file of 200 GB of holes costs the quota nothing; archived in full it would fill the
    host's disk (the episode then errored). Sparse files are archived as their data."""
    if os.geteuid() != 0:
        pytest.skip("the storage quota needs root on the host")
    task = write_task(work, task_toml="[environment]\nstorage_mb = 64\n")
    async with running(make_sandbox(task, work)) as sandbox:
        made = await sandbox.exec("echo data > /app/holes && truncate -s 200G /app/holes && du -k /app/holes")
        assert made.return_code == 0 and int(made.stdout.split()[0]) < 1024, made
        free_before = shutil.disk_usage(work).free
        await sandbox.prepare_verifier()
        assert abs(shutil.disk_usage(work).free - free_before) < 64 * 1024 * 1024
        seen = await sandbox.exec("stat -c %s /app/holes && head -c 5 /app/holes")
        assert seen.stdout == f"{200 * 1024**3}\ndata\n", seen


async def test_a_workdir_the_agent_replaced_by_a_link_is_copied_not_moved(work: Path) -> None:
    task = write_task(work, dockerfile="FROM debian:bookworm-slim\nWORKDIR /app\n")
    async with running(make_sandbox(task, work)) as sandbox:
        setup = "mkdir /tmp/real && echo 7 > /tmp/real/answer && cd / && rm -rf /app && ln -s /tmp/real /app"
        assert (await sandbox.exec(setup, cwd="/")).return_code == 0
        await sandbox.prepare_verifier()
        # A rename would have moved the link (to a folder the verifier's sandbox does not hold).
        result = await sandbox.exec("test -d /app && ! test -L /app && cat /app/answer", cwd="/")
        assert (result.return_code, result.stdout) == (0, "7\n"), result


async def test_the_next_start_reaps_dead_owners_but_not_live_or_kept_ones(work: Path) -> None:
    from harbor_env.sandbox import reaper

    parent = work / "sandboxes"
    dead, kept = parent / "dead-owner", parent / "kept"
    for folder in (dead, kept):
        (folder / "root").mkdir(parents=True)
    (dead / reaper.OWNER_FILE).write_text(json.dumps({"pid": 2**22 + 7, "start": "1", "cgroups": []}))
    make_deep_tree(dead / "root" / "app", 3000)  # Python's recursive rmtree gives up at ~1000
    reaper._last_reaped.clear()
    async with running(make_sandbox(write_task(work), work)) as live:
        assert not dead.exists() and kept.is_dir() and live.sandbox_dir.is_dir()
        assert json.loads((live.sandbox_dir / reaper.OWNER_FILE).read_text())["pid"] == os.getpid()
        # What the agent makes there (a setuid-root file, say) is out of other host users' reach.
        assert live.sandbox_dir.stat().st_mode & 0o777 == 0o700


def make_deep_tree(top: Path, depth: int) -> None:
    """`depth` nested folders under `top` (relative steps: the whole path is longer than PATH_MAX)."""
    top.mkdir(parents=True, exist_ok=True)
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)


async def test_the_isolation_command_spares_only_the_chain_that_runs_it(work: Path) -> None:
    """What every environment type runs when verification starts (docker, cloud, local shared
    mode): the agent's processes die; the processes running the command (an exec daemon, here
    a shell that waits for it) and the init live on."""
    from harbor_env.verifier_isolation import isolation_command

    async with running(make_sandbox(write_task(work), work, verifier="shared")) as sandbox:
        await sandbox.exec(
            "(setsid sleep 1000 >/dev/null 2>&1 &); tmux new -d -s t 'sleep 1000'; mkdir -p /logs/agent/x; "
            "rm -rf /tests; ln -s /logs/agent/x /tests; echo 1 > /logs/verifier/reward.txt"
        )
        result = await sandbox.exec(
            f"{isolation_command(sandbox)}; echo exit=$?; "
            "for p in /proc/[0-9]*; do cat $p/comm; done 2>/dev/null | sort | uniq -c"
        )
        assert "exit=0" in result.stdout, result
        assert "sleep" not in result.stdout and "tmux" not in result.stdout, result.stdout
        after = await sandbox.exec(
            "ls -A /logs/verifier /logs/agent/x; test -d /tests && ! test -L /tests && echo tests-ok"
        )
        assert after.stdout == "/logs/agent/x:\n\n/logs/verifier:\ntests-ok\n", after.stdout


async def test_the_isolation_command_spares_the_environments_own_processes(work: Path) -> None:
    """A container's keep-alive (or a cloud sandbox's exec daemon) runs before the agent does:
    listed then, by PID and start time, it lives on; what started later dies, even a process
    named like it."""
    from harbor_env.verifier_isolation import isolation_command, list_own_processes

    async with running(make_sandbox(write_task(work), work, verifier="shared")) as sandbox:
        await sandbox.exec("(setsid sleep 1001 >/dev/null 2>&1 &)")
        start = await list_own_processes(sandbox)
        own = start.own_processes
        assert start.workdir == "/app" and start.search_paths["PATH"].startswith("/usr/local/sbin:")
        assert len(own.split()) >= 2 and all(":" in entry for entry in own.split()), own
        await sandbox.exec("(setsid sleep 1002 >/dev/null 2>&1 &)")
        result = await sandbox.exec(
            f"{isolation_command(sandbox, own)}; echo exit=$?; "
            "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done 2>/dev/null"
        )
        assert "exit=0" in result.stdout, result
        assert "sleep 1001" in result.stdout and "sleep 1002" not in result.stdout, result.stdout
