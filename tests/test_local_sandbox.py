"""The local sandbox on its own: exec, files, isolation, network, limits, cleanup, errors."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path, PurePosixPath

import pytest
from conftest import (
    HARBOR_AUTO_MOUNTING,
    REPO,
    make_sandbox,
    pid_namespace,
    processes_in,
    running,
    write_task,
)
from harbor.models.task.config import NetworkMode, NetworkPolicy

from harbor_env.sandbox import LocalSandbox, LocalSandboxConfig
from harbor_env.sandbox.quota import VERIFIER_ROOM_MB

COPYING_DOCKERFILE = """\
FROM python:3.12-slim
ARG APP_HOME=/srv/project
RUN apt-get update && apt-get install -y tmux
ENV GREETING="hello world" MODE=test
WORKDIR ${APP_HOME}
COPY app/ ./
COPY extra.conf /etc/probe/extra.conf
"""


@pytest.fixture
def copying_task(work: Path) -> Path:
    return write_task(
        work,
        dockerfile=COPYING_DOCKERFILE,
        files={"environment/app/main.py": "print('hi')\n", "environment/extra.conf": "level=3\n"},
    )


async def test_exec_applies_workdir_env_and_copies(copying_task: Path, work: Path) -> None:
    async with running(make_sandbox(copying_task, work)) as sandbox:
        result = await sandbox.exec('pwd; echo "$GREETING/$MODE"; cat main.py /etc/probe/extra.conf')
        assert result.return_code == 0, result
        assert result.stdout.splitlines() == ["/srv/project", "hello world/test", "print('hi')", "level=3"]
        # The rest of /etc is still the base's.
        assert (await sandbox.exec("test -f /etc/passwd")).return_code == 0


async def test_exec_cwd_env_exit_code_and_user(work: Path) -> None:
    async with running(make_sandbox(write_task(work), work)) as sandbox:
        result = await sandbox.exec("pwd; echo $FOO; echo oops >&2; exit 3", cwd="/tmp", env={"FOO": "bar"})
        assert (result.return_code, result.stdout, result.stderr) == (3, "/tmp\nbar\n", "oops\n")
        assert (await sandbox.exec("id -u")).stdout.strip() == "0"
        assert (await sandbox.exec("id -u", user="nobody")).stdout.strip() == "65534"
        with pytest.raises(ValueError, match="no-such-user"):
            await sandbox.exec("true", user="no-such-user")


async def test_host_environment_does_not_leak_into_the_sandbox(work: Path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-host-secret")
    async with running(make_sandbox(write_task(work), work)) as sandbox:
        result = await sandbox.exec("env")
        assert "sk-host-secret" not in result.stdout
        assert "HOME=/root" in result.stdout


async def test_timeout_kills_the_command(work: Path) -> None:
    async with running(make_sandbox(write_task(work), work)) as sandbox:
        with pytest.raises(RuntimeError, match="timed out after 1 seconds"):
            await sandbox.exec("sleep 30 & sleep 31; wait", timeout_sec=1)
        await asyncio.sleep(0.1)
        ps = await sandbox.exec("ps -eo args")
        assert "sleep 3" not in ps.stdout


async def test_daemons_persist_between_commands_and_die_at_stop(work: Path) -> None:
    sandbox = make_sandbox(write_task(work), work)
    await sandbox.start(force_build=False)
    try:
        started = await sandbox.exec("tmux new-session -d -s terminus-2 'sleep 1000' && tmux ls")
        assert started.return_code == 0, started
        assert "terminus-2" in (await sandbox.exec("tmux ls")).stdout
        namespace = pid_namespace(sandbox.init_pid)
        assert len(processes_in(namespace)) >= 3  # init, its shell, tmux server, sleep
        sandbox_dir = sandbox.sandbox_dir
    finally:
        await sandbox.stop(delete=True)
    await asyncio.sleep(0.05)
    assert processes_in(namespace) == []
    assert not sandbox_dir.exists()


CRASHING_OWNER = """
import asyncio, os, sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from conftest import make_sandbox
from harbor_env.errors import LocalSandboxError
async def main():
    sandbox = make_sandbox(Path({task!r}), Path({work!r}), "crash", **{kwargs!r})
    await sandbox.start(force_build=False)
    await sandbox.exec("echo written > /usr/written || true")  # on an image: into the overlay
    # Daemons, and a write end of the init's stdin held open from inside (or tried).
    await sandbox.exec("tmux new-session -d -s terminus-2 'exec 9>/proc/1/fd/0; sleep 1000'; (setsid sleep 1000 >/dev/null 2>&1 &)")
    print(sandbox.init_pid, sandbox.sandbox_dir, flush=True)
    os._exit(0)  # no stop(): as if the env server crashed
asyncio.run(main())
"""


@pytest.mark.parametrize("image_mode", ["host", "image"])
def test_a_crashed_owner_takes_its_sandbox_and_daemons_along(image_mode: str, work: Path, image_cache: Path) -> None:
    """The env server dies without stopping its sandboxes: nothing of them may live on, and
    their folders and cgroups are reaped afterwards (here by the documented command). On an
    image, its overlay goes with it and the cached root is no longer held."""
    from harbor_env.sandbox import reaper
    from harbor_env.sandbox.image_cache import ImageCache
    from harbor_env.testing.containers import image_mode_unready

    if image_mode == "image" and image_mode_unready() and os.environ.get("HARBOR_ENV_REQUIRE_CONTAINERS") != "1":
        pytest.skip(f"no image tool: {image_mode_unready()}")
    dockerfile = "FROM debian:bookworm-slim\nRUN echo image > /marker\nWORKDIR /app\n"
    task = write_task(work, task_toml="[environment]\nmemory_mb = 256\n", dockerfile=dockerfile)
    kwargs = {"image_mode": image_mode, "image_cache": str(image_cache)}
    script = CRASHING_OWNER.format(tests=str(REPO / "tests"), task=str(task), work=str(work), kwargs=kwargs)
    result = subprocess.run([os.sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    init_pid, sandbox_dir = result.stdout.split()
    namespace = pid_namespace(int(init_pid))
    assert namespace is not None, result.stderr
    deadline = time.monotonic() + 10
    while processes_in(namespace) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = processes_in(namespace)
    for pid in survivors:  # do not leak them when the test fails
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert survivors == []
    groups = json.loads((Path(sandbox_dir) / reaper.OWNER_FILE).read_text())["cgroups"]
    assert Path(sandbox_dir).is_dir() and all(Path(g).is_dir() for g in groups)
    command = subprocess.run(
        [os.sys.executable, "-m", "harbor_env.sandbox.reaper", str(work / "sandboxes")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"reaped {sandbox_dir}" in command.stdout, command.stdout + command.stderr
    assert not Path(sandbox_dir).exists() and not any(Path(g).exists() for g in groups)
    assert sandbox_dir not in Path("/proc/self/mountinfo").read_text(), "a mount of the sandbox was left"
    if image_mode == "image":
        (entry,) = [e for e in ImageCache(image_cache, max_bytes=None).entries() if e.source == str(task)]
        assert not entry.in_use, "the crashed sandbox still holds its image root"


async def test_keep_leaves_the_directory(work: Path) -> None:
    sandbox = make_sandbox(write_task(work), work, keep=True)
    await sandbox.start(force_build=False)
    await sandbox.exec("echo kept > /app/file")
    sandbox_dir = sandbox.sandbox_dir
    await sandbox.stop(delete=True)
    assert (sandbox_dir / "root/app/file").read_text() == "kept\n"


async def test_cannot_write_to_the_host(work: Path) -> None:
    # A host directory the sandbox sees (read-only): not under /tmp or a home, which it hides.
    probe_parent = Path("/var/lib") if os.access("/var/lib", os.W_OK) else REPO
    probe = probe_parent / f".harbor-env-host-probe-{os.getpid()}"
    probe.mkdir()
    (probe / "existing").write_text("original\n")
    try:
        async with running(make_sandbox(write_task(work), work, "hidden")) as sandbox:
            # Not a system folder: outside the host paths a sandbox sees.
            assert (await sandbox.exec(f"ls {probe}")).return_code != 0
        host_paths = [*LocalSandboxConfig().host_paths, str(probe)]
        async with running(make_sandbox(write_task(work, "shown"), work, "shown", host_paths=host_paths)) as sandbox:
            assert (await sandbox.exec(f"cat {probe}/existing")).stdout == "original\n"
            for command in (
                f"echo x > {probe}/new",
                f"echo x > {probe}/existing",
                f"rm -f {probe}/existing",
                "touch /usr/bin/probe",
                "echo x >> /etc/passwd",
            ):
                result = await sandbox.exec(command)
                assert result.return_code != 0, command
            assert (await sandbox.exec(f"cat {probe}/existing")).stdout == "original\n"
        assert sorted(p.name for p in probe.iterdir()) == ["existing"]
        assert (probe / "existing").read_text() == "original\n"
        assert not Path("/usr/bin/probe").exists()
    finally:
        shutil.rmtree(probe)


async def test_concurrent_sandboxes_do_not_see_each_other(work: Path) -> None:
    task = write_task(work)
    a, b = make_sandbox(task, work, "a"), make_sandbox(task, work, "b")
    async with running(a), running(b):
        for sandbox, secret in ((a, "alpha"), (b, "bravo")):
            assert (
                await sandbox.exec(
                    f"echo {secret} > /app/secret; echo {secret} > /tmp/secret; tmux new -d -s s-{secret}"
                )
            ).return_code == 0
        for sandbox, mine, theirs in ((a, "alpha", "bravo"), (b, "bravo", "alpha")):
            result = await sandbox.exec("cat /app/secret /tmp/secret; tmux ls")
            assert mine in result.stdout and theirs not in result.stdout
            # The other sandbox's directory is not reachable by host path either.
            other = (b if sandbox is a else a).sandbox_dir
            assert (await sandbox.exec(f"ls {other}/root/app")).return_code != 0
            assert (await sandbox.exec(f"ls {work / 'trials'}")).return_code != 0
        # The host's home directory is hidden (the sandbox's home is its own).
        listed = ((await a.exec(f"ls -A {Path.home()}")).stdout or "").split()
        assert not set(listed) & set(os.listdir(Path.home()))


def _serve_once(server: socket.socket) -> None:
    with server:
        server.settimeout(10)
        try:
            connection, _ = server.accept()
        except OSError:
            return
        with connection:
            connection.sendall(b"host-server\n")


async def _can_reach_host_port(sandbox: LocalSandbox, address: str = "127.0.0.1", bind: str = "127.0.0.1") -> bool:
    """Whether a command in the sandbox reaches a server of the host's at `address` (bound to `bind`)."""
    server = socket.socket()
    server.bind((bind, 0))
    server.listen()
    port = server.getsockname()[1]
    thread = threading.Thread(target=_serve_once, args=(server,), daemon=True)
    thread.start()
    result = await sandbox.exec(
        f"python3 -c \"import socket; s=socket.create_connection(('{address}', {port}), timeout=3); "
        'print(s.recv(64).decode())"'
    )
    server.close()
    return "host-server" in (result.stdout or "")


def _host_address() -> str:
    """An address of this host's outside its loopback (where outbound traffic comes from)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the route
        return probe.getsockname()[0]


async def test_network_is_off_unless_the_task_states_it(work: Path) -> None:
    offline = make_sandbox(write_task(work, "offline"), work, "offline")
    async with running(offline):
        assert offline.network_isolated
        assert not await _can_reach_host_port(offline)
        interfaces = (await offline.exec("cat /proc/net/dev")).stdout
        assert [line.split(":")[0].strip() for line in interfaces.splitlines()[2:]] == ["lo"]


@pytest.mark.skipif(shutil.which("slirp4netns") is None, reason="slirp4netns is not installed")
async def test_a_public_network_reaches_out_but_not_the_hosts_loopback(work: Path) -> None:
    """A public task gets outbound access through its own network namespace (slirp4netns): a
    server on the host's outside address answers; the host's loopback (the env server, the
    inference server) does not, directly or through the gateway, nor do the host's abstract
    sockets. The verifier phase of a no-network policy takes the access away again."""
    online_task = write_task(work, "online", task_toml='[environment]\nnetwork_mode = "public"\n')
    online = make_sandbox(online_task, work, "online")
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(f"\0harbor-env-test-{os.getpid()}")
    abstract.listen()
    async with running(online):
        assert not online.network_isolated
        assert await _can_reach_host_port(online, _host_address(), bind="0.0.0.0")
        assert not await _can_reach_host_port(online)
        assert not await _can_reach_host_port(online, "10.0.2.2")
        reach = await online.exec(
            f"python3 -c \"import socket; socket.socket(socket.AF_UNIX).connect('\\0harbor-env-test-{os.getpid()}')\""
        )
        assert reach.return_code != 0 and "Connection refused" in reach.stderr, reach
        await online.set_network_policy(NetworkPolicy(network_mode=NetworkMode.NO_NETWORK))
        assert online.network_isolated
        assert not await _can_reach_host_port(online, _host_address(), bind="0.0.0.0")
    abstract.close()


async def test_uploads_and_downloads(work: Path) -> None:
    source = work / "upload"
    (source / "nested").mkdir(parents=True)
    (source / "a.txt").write_text("A\n")
    (source / "nested" / "b.txt").write_text("B\n")
    async with running(make_sandbox(write_task(work), work)) as sandbox:
        await sandbox.upload_dir(source, "/tests")
        await sandbox.upload_file(source / "a.txt", "/app/deep/copy.txt")
        # Outside the sandbox's own directories: created inside the sandbox's private root.
        await sandbox.upload_dir(source, "/installed-agent")
        result = await sandbox.exec(
            "cat /tests/a.txt /tests/nested/b.txt /app/deep/copy.txt /installed-agent/nested/b.txt"
        )
        assert result.stdout == "A\nB\nA\nB\n"
        # Read-only base paths refuse uploads.
        with pytest.raises(PermissionError):
            await sandbox.upload_file(source / "a.txt", "/usr/share/probe.txt")

        await sandbox.exec(
            "mkdir -p /app/out/sub && echo X > /app/out/sub/x && echo Y > /tmp/inside && ln -s /tmp /app/link"
        )
        await sandbox.download_dir("/app/out", work / "down")
        assert (work / "down/sub/x").read_text() == "X\n"
        await sandbox.download_file("/app/out/sub/x", work / "x.txt")
        assert (work / "x.txt").read_text() == "X\n"
        # A symlink is resolved inside the sandbox, never on the host.
        await sandbox.download_file("/app/link/inside", work / "inside.txt")
        assert (work / "inside.txt").read_text() == "Y\n"
        # Harbor's mounts: the verifier directory is the trial's directory on the host.
        await sandbox.exec("echo 0.5 > /logs/verifier/reward.txt")
        assert (sandbox.trial_paths.verifier_dir / "reward.txt").read_text() == "0.5\n"


@pytest.mark.parametrize("auto_mounting", [True, False] if HARBOR_AUTO_MOUNTING else [True])
async def test_log_dirs_are_bound_unless_auto_mounting_is_off(auto_mounting: bool, work: Path) -> None:
    """Harbor 0.25 asks the environment whether a log directory is the trial's folder
    (`is_path_mounted`) and downloads it when not; earlier versions trust `mounted`. Bound, a
    download onto that folder is a no-op (a copy onto itself used to fail every verification);
    with `auto_mounting=False` the logs stay inside until downloaded."""
    options = {} if auto_mounting else {"auto_mounting": False}
    async with running(make_sandbox(write_task(work), work, **options)) as sandbox:
        host = sandbox.trial_paths.verifier_dir
        if HARBOR_AUTO_MOUNTING:
            assert sandbox.is_path_mounted(PurePosixPath("/logs/verifier"), host) is auto_mounting
        written = await sandbox.exec("echo 0.5 > /logs/verifier/reward.txt && stat -c %a /logs/verifier")
        if not auto_mounting:  # the sandbox's own directory: writable for a task's user, as Harbor makes it
            assert written.stdout.strip() == "777", written
        assert (host / "reward.txt").exists() is auto_mounting
        await sandbox.download_dir("/logs/verifier", host)
        await sandbox.upload_dir(host, "/logs/verifier")
        assert (host / "reward.txt").read_text() == "0.5\n"
        assert (await sandbox.exec("cat /logs/verifier/reward.txt")).stdout == "0.5\n"


async def test_empty_dirs_through_host_paths_never_follows_links(work: Path) -> None:
    """Harbor empties /logs/verifier and /tests before verifying: the local sandbox does it from
    the host where it can, removing planted links without following them."""
    async with running(make_sandbox(write_task(work), work)) as sandbox:
        planted = await sandbox.exec(
            "mkdir -p /tests/sub && echo x > /tests/sub/f && ln -s /usr/bin /tests/bin-link "
            "&& echo 1 > /logs/verifier/reward.txt && ln -s /tmp /app/via"
        )
        assert planted.return_code == 0, planted
        commands: list[str] = []
        run_in_sandbox = sandbox.exec

        async def recording_exec(command: str, **kwargs):
            commands.append(command)
            return await run_in_sandbox(command, **kwargs)

        sandbox.exec = recording_exec
        await sandbox.empty_dirs(["/tests", "/logs/verifier", "/app/new"], chmod=True)
        assert commands == []  # all reached from the host
        await sandbox.empty_dirs(["/app/via/made"], chmod=True)
        assert len(commands) == 1  # a link on the way: resolved inside the sandbox
        sandbox.exec = run_in_sandbox
        check = await sandbox.exec(
            "ls -A /tests /logs/verifier; stat -c %a /logs/verifier /app/new; test -d /tmp/made && test -x /usr/bin/env && echo intact"
        )
    assert check.stdout.split() == ["/logs/verifier:", "/tests:", "777", "777", "intact"], check
    assert list(sandbox.trial_paths.verifier_dir.iterdir()) == []


FORK_MANY = """python3 - <<'EOF'
import os, time
children = 0
try:
    for _ in range(500):
        if os.fork() == 0:
            os.closerange(0, 3)
            time.sleep(2)
            os._exit(0)
        children += 1
except OSError:
    pass
print(children)
EOF"""


async def test_memory_and_process_limits(work: Path) -> None:
    task = write_task(work, task_toml="[environment]\nmemory_mb = 128\ncpus = 1\n")
    async with running(make_sandbox(task, work, pids_limit=64)) as sandbox:
        enforced = sandbox._cgroup.enforced if sandbox._cgroup else set()
        if not {"memory_mb", "pids"} <= enforced:
            pytest.skip(f"this host cannot enforce cgroup limits (enforced: {sorted(enforced)})")
        hog = await sandbox.exec(
            "python3 -c \"x = bytearray(400 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096]); print('survived')\""
        )
        assert hog.return_code == 137 and "survived" not in (hog.stdout or "")  # SIGKILL, as in Docker
        forks = await sandbox.exec(FORK_MANY, timeout_sec=60)
        assert forks.return_code == 0, forks
        assert 0 < int(forks.stdout) < 64
        # The sandbox still works after hitting its limits.
        assert (await sandbox.exec("echo ok")).stdout == "ok\n"


async def test_storage_quota_stops_a_disk_filler(work: Path) -> None:
    task = write_task(
        work,
        task_toml="[environment]\nstorage_mb = 32\n",
        files={"environment/seed.txt": "seed\n"},
        dockerfile="FROM debian:bookworm-slim\nWORKDIR /app\nCOPY seed.txt /app/\n",
    )
    if os.geteuid() != 0:
        pytest.skip("the storage quota needs root on the host")
    free_before = shutil.disk_usage(work).free
    async with running(make_sandbox(task, work)) as sandbox:
        # The quota's shell put the init into the sandbox's cgroups (in the background) before bwrap.
        groups = sandbox._cgroup.groups if sandbox._cgroup is not None else []
        init_cgroups = Path(f"/proc/{sandbox.init_pid}/cgroup").read_text()
        assert all(f"/{group.name}\n" in init_cgroups for group in groups), (groups, init_cgroups)
        fill = await sandbox.exec("dd if=/dev/zero of=/tmp/fill bs=1M count=100 2>&1; stat -c %s /tmp/fill")
        assert "No space left on device" in fill.stdout, fill
        assert int(fill.stdout.split()[-1]) <= 32 * 1024 * 1024
        assert (await sandbox.exec("cat /app/seed.txt")).stdout == "seed\n"  # the COPY made it in
        # Uploads count against the quota, and still work within it.
        await sandbox.exec("rm /tmp/fill")
        (work / "upload.txt").write_text("uploaded\n")
        await sandbox.upload_file(work / "upload.txt", "/tests/upload.txt")
        assert (await sandbox.exec("cat /tests/upload.txt")).stdout == "uploaded\n"
        # Harbor's log folders count too: nothing of the host is bound, and Harbor downloads them
        # through the sandbox (`mounted` is off), sparse files as their data.
        assert not sandbox.capabilities.mounted
        # The verifier's folder (and /tests) have a room of their own beside the quota: a full
        # quota must not keep the tests from being uploaded.
        for logs, megabytes in (("agent", 100), ("artifacts", 100), ("verifier", VERIFIER_ROOM_MB + 100)):
            fill = await sandbox.exec(
                f"dd if=/dev/zero of=/logs/{logs}/fill bs=1M count={megabytes} 2>&1; rm /logs/{logs}/fill; "
                f"echo kept > /logs/{logs}/note; truncate -s 100G /logs/{logs}/holes"
            )
            assert "No space left on device" in fill.stdout, (logs, fill)
            await sandbox.download_dir(f"/logs/{logs}", work / "trials" / "probe" / logs)
            assert (work / "trials" / "probe" / logs / "note").read_text() == "kept\n"
            assert (work / "trials" / "probe" / logs / "holes").stat().st_blocks < 1024
        sandbox_dir = sandbox.sandbox_dir
    # Nothing reached the host's disk, and the quota's tmpfs went with the sandbox.
    assert abs(shutil.disk_usage(work).free - free_before) < 16 * 1024 * 1024
    assert str(sandbox_dir) not in Path("/proc/self/mountinfo").read_text()
    assert not sandbox_dir.exists()


async def test_dockerfile_warning_names_what_is_not_applied(copying_task: Path, work: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        async with running(make_sandbox(copying_task, work)):
            pass
    messages = [r.getMessage() for r in caplog.records if "not applied" in r.getMessage()]
    assert len(messages) == 1
    assert "RUN (line 3)" in messages[0] and "FROM python:3.12-slim" in messages[0]
    assert "COPY" not in messages[0] and "WORKDIR" not in messages[0]


def _build_minimal_rootfs(rootfs: Path) -> None:
    """An unpacked root file system with a shell and a few tools (like `docker export`)."""
    programs = ["bash", "sh", "cat", "ls", "mkdir", "tar", "id", "pwd", "env"]
    for program in programs:
        path = Path(shutil.which(program)).resolve()
        libraries = subprocess.run(["ldd", str(path)], capture_output=True, text=True).stdout
        for candidate in [str(path)] + [w for w in libraries.split() if w.startswith("/")]:
            target = rootfs / candidate.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(candidate, target)
        (rootfs / "bin").mkdir(exist_ok=True)
        if not (rootfs / "bin" / program).exists():
            (rootfs / "bin" / program).symlink_to(f"/{path.relative_to('/')}")
    (rootfs / "etc").mkdir(exist_ok=True)
    (rootfs / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\nrunner:x:1234:1234::/home/runner:/bin/sh\n")
    (rootfs / "app").mkdir()
    (rootfs / "app/from-image.txt").write_text("baked into the image\n")


async def test_rootfs_runs_on_an_unpacked_image(work: Path) -> None:
    rootfs = work / "rootfs"
    _build_minimal_rootfs(rootfs)
    task = write_task(work, dockerfile="FROM example/image\nWORKDIR /app\nRUN make\nCOPY missing/ /app/\n")
    async with running(make_sandbox(task, work, rootfs=str(rootfs))) as sandbox:
        result = await sandbox.exec("cat from-image.txt && echo changed > from-image.txt && ls /")
        assert result.return_code == 0, result
        assert result.stdout.startswith("baked into the image\n")
        assert "work" not in result.stdout.split()  # the host's directories are not there
        assert (await sandbox.exec("id -u", user="runner")).stdout.strip() == "1234"
    # The image itself is never modified.
    assert (rootfs / "app/from-image.txt").read_text() == "baked into the image\n"
