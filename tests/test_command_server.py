"""The sandbox's command path through the command server (sandbox/commands.py, command_server.py).

Every test runs real commands in a real LocalSandbox. Where the server path must behave as the
nsenter path did, the test runs the same command through both and compares.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import make_sandbox, running, write_task

from harbor_env.errors import LocalSandboxError
from harbor_env.sandbox import commands
from harbor_env.sandbox.commands import command_server
from harbor_env.testing.processes import alive, children_of

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the command server needs root on the host")


async def test_commands_run_through_the_server(work: Path) -> None:
    async with running(make_sandbox(write_task(work), work)) as sandbox:
        assert sandbox.command_path == "server"
        result = await sandbox.exec("echo $$; pwd; echo $HOME $FOO; echo err >&2; exit 3", env={"FOO": "bar"})
        assert result.return_code == 3 and result.stderr == "err\n"
        pid, cwd, env = result.stdout.splitlines()
        assert (pid, cwd, env) == (pid, "/app", "/root bar") and int(pid) > 1  # a PID of the sandbox
        assert command_server().pid is not None


async def test_commands_are_found_on_the_sandboxes_path(work: Path) -> None:
    async with running(make_sandbox(write_task(work), work)) as sandbox:
        assert await sandbox._run(["printf", "found"], user=None) == (0, b"found", b"")
        code, _, err = await sandbox._run(["no-such-command"], user=None)
        assert code == 127 and err == b"no-such-command: No such file or directory\n"
        code, _, err = await sandbox._run(["/etc/passwd"], user=None)
        assert code == 126 and b"Permission denied" in err


async def test_working_directories(work: Path) -> None:
    async with running(make_sandbox(write_task(work), work)) as sandbox:
        assert (await sandbox.exec("pwd", cwd="/tmp")).stdout == "/tmp\n"
        await sandbox.exec("mkdir -p '/tmp/a dir'")
        assert (await sandbox.exec("pwd", cwd="/tmp/a dir")).stdout == "/tmp/a dir\n"
        missing = await sandbox.exec("echo never", cwd="/nowhere")
        assert missing.return_code == 1 and missing.stdout is None
        assert "/nowhere" in (missing.stderr or "") and "No such file or directory" in (missing.stderr or "")


async def test_users_from_the_sandboxes_passwd(work: Path) -> None:
    async with running(make_sandbox(write_task(work), work)) as sandbox:
        nobody = await sandbox.exec(
            "id -u; id -g; id -G; echo $HOME; grep -E '^(CapEff|CapPrm)' /proc/self/status", user="nobody"
        )
        lines = nobody.stdout.splitlines()
        assert lines[:3] == ["65534", "65534", "65534"], nobody  # no supplementary groups of root
        assert lines[4:] == ["CapPrm:\t0000000000000000", "CapEff:\t0000000000000000"]
        assert (await sandbox.exec("id -u", user="root")).stdout == "0\n"
        with pytest.raises(ValueError, match="user 'no-such-user' does not exist"):
            await sandbox.exec("true", user="no-such-user")


async def test_privileges_match_the_nsenter_path(work: Path) -> None:
    probe = "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status; ls /proc/self/fd"
    seen = {}
    for path in ("server", "nsenter"):
        async with running(make_sandbox(write_task(work, f"t-{path}"), work, path, command_path=path)) as sandbox:
            assert sandbox.command_path == path
            seen[path] = (await sandbox.exec(probe)).stdout
            assert (await sandbox.exec("mount -t tmpfs none /tmp")).return_code != 0
    assert seen["server"] == seen["nsenter"]
    # Only the standard streams (and ls's own directory) reach a command: never the server's socket.
    descriptors = [line for line in seen["server"].splitlines() if line.isdigit()]
    assert descriptors in (["0", "1", "2", "3"], ["0", "1", "2"]), seen["server"]


async def test_stdin_bytes_and_files_and_stdout_to_a_file(work: Path) -> None:
    async with running(make_sandbox(write_task(work), work)) as sandbox:
        assert await sandbox._run(["cat"], user=None, stdin=b"inline\0bytes") == (0, b"inline\0bytes", b"")
        code, out, _ = await sandbox._run(["wc", "-c"], user=None, stdin=b"x" * 300_000)  # past MAX_INLINE
        assert (code, out) == (0, b"300000\n")
        source = work / "in.bin"
        source.write_bytes(os.urandom(1 << 20))
        target = work / "out.bin"
        with source.open("rb") as stdin, target.open("wb") as stdout:
            code, out, err = await sandbox._run(["cat"], user=None, stdin=stdin, stdout=stdout)
        assert (code, out, err) == (0, b"", b"") and target.read_bytes() == source.read_bytes()
        # A command that does not read its stdin does not hang the writer.
        assert (await sandbox._run(["true"], user=None, stdin=b"y" * (1 << 20)))[0] == 0


async def test_large_outputs_on_both_streams(work: Path) -> None:
    async with running(make_sandbox(write_task(work), work)) as sandbox:
        result = await sandbox.exec(
            "head -c 30000000 /dev/zero | tr '\\0' a; head -c 20000000 /dev/zero | tr '\\0' b >&2"
        )
        assert result.return_code == 0
        assert len(result.stdout) == 30_000_000 and set(result.stdout) == {"a"}
        assert len(result.stderr) == 20_000_000 and set(result.stderr) == {"b"}


async def test_timeouts_kill_the_whole_process_group(work: Path) -> None:
    async with running(make_sandbox(write_task(work), work)) as sandbox:
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="Command timed out after 1 seconds"):
            await sandbox.exec("sleep 41 & sleep 42 & echo started; wait", timeout_sec=1)
        assert time.monotonic() - started < 5
        await asyncio.sleep(0.2)
        assert "sleep 4" not in (await sandbox.exec("ps -eo args")).stdout
        assert (await sandbox.exec("echo still fine")).stdout == "still fine\n"


async def test_a_timeout_ends_the_command_even_if_a_daemon_holds_its_output(work: Path) -> None:
    async with running(make_sandbox(write_task(work), work)) as sandbox:
        started = time.monotonic()
        with pytest.raises(TimeoutError):  # the daemon's own session survives the process-group kill
            await sandbox._run(["sh", "-c", "setsid sleep 43 & sleep 44"], user=None, timeout_sec=1)
        assert time.monotonic() - started < commands.KILL_GRACE_SEC
        assert (await sandbox.exec("echo still fine")).stdout == "still fine\n"


async def test_output_past_the_limit_is_dropped_and_said(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands, "MAX_OUTPUT", 1000)
    async with running(make_sandbox(write_task(work), work)) as sandbox:
        code, out, err = await sandbox._run(["sh", "-c", "head -c 5000 /dev/zero; echo e >&2"], user=None)
        assert code == 0 and out == bytes(1000)
        assert err == b"e\n\nlocal sandbox: the command's stdout was cut at 1000 of its 5000 bytes\n"


async def test_signals_read_as_128_plus_n(work: Path) -> None:
    async with running(make_sandbox(write_task(work), work)) as sandbox:
        assert (await sandbox.exec("kill -TERM $$")).return_code == 128 + signal.SIGTERM
        assert (await sandbox.exec("kill -KILL $$")).return_code == 128 + signal.SIGKILL


async def test_a_crashed_agent_fails_its_commands_and_the_next_starts_a_new_one(work: Path) -> None:
    async with running(make_sandbox(write_task(work), work)) as sandbox:
        await sandbox.exec("true")
        (first,) = children_of(command_server().pid)  # the sandbox's agent
        running_command = asyncio.create_task(sandbox.exec("sleep 30"))
        await asyncio.sleep(0.3)
        os.kill(first, signal.SIGKILL)
        with pytest.raises(LocalSandboxError, match="command agent died"):
            await asyncio.wait_for(running_command, 10)
        # The next command notices and starts a new agent.
        assert (await sandbox.exec("echo again")).stdout == "again\n"
        (second,) = children_of(command_server().pid)
        assert second != first
        # Killed while idle: nothing was in flight, so nothing fails.
        os.kill(second, signal.SIGKILL)
        await asyncio.sleep(0.2)
        assert (await sandbox.exec("echo third")).stdout == "third\n"


async def test_a_crashed_server_leaves_running_sandboxes_alone_and_is_restarted(work: Path) -> None:
    async with running(make_sandbox(write_task(work, "one"), work, "one")) as one:
        await one.exec("true")
        server = command_server().pid
        os.kill(server, signal.SIGKILL)
        await asyncio.sleep(0.2)
        assert (await one.exec("echo alive")).stdout == "alive\n"  # its agent does not need the server
        async with running(make_sandbox(write_task(work, "two"), work, "two")) as two:
            assert (await two.exec("echo new")).stdout == "new\n"
            assert command_server().pid not in (None, server)


async def test_the_agent_and_the_server_are_out_of_the_sandboxes_reach(work: Path) -> None:
    """Both are host processes: no process of the sandbox sees them, holds their sockets or can
    signal them (commands share the agent's namespaces, all but the PID namespace)."""
    async with running(make_sandbox(write_task(work), work)) as sandbox:
        await sandbox.exec("true")
        server = command_server().pid
        (agent,) = children_of(server)
        listing = (await sandbox.exec("ls -l /proc/*/fd 2>/dev/null | grep -c socket; ps -eo pid,args")).stdout
        assert listing.splitlines()[0] == "0"  # no process in the sandbox holds a socket
        assert "command_server" not in listing
        for pid in (server, agent):
            attempt = await sandbox.exec(f"kill -9 {pid}")
            assert attempt.return_code != 0 and alive(pid)
        assert Path(f"/proc/{agent}/status").read_text().count("NoNewPrivs:\t1") == 1


SERVER_OWNER = """
import asyncio, os, sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from conftest import make_sandbox
from harbor_env.sandbox.commands import command_server
from harbor_env.testing.processes import alive, children_of

async def main():
    sandbox = make_sandbox(Path({task!r}), Path({work!r}), "owner")
    await sandbox.start(force_build=False)
    await sandbox.exec("true")
    server = command_server().pid
    agents = children_of(server)
    print(server, *agents, flush=True)
    os._exit(0)  # no cleanup at all: a crash
asyncio.run(main())
"""


def test_the_server_ends_with_its_owner(work: Path) -> None:
    task = write_task(work)
    script = SERVER_OWNER.format(tests=str(Path(__file__).parent), task=str(task), work=str(work))
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    server, *agents = (int(pid) for pid in result.stdout.split())
    assert len(agents) == 1
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in (server, *agents)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in (server, *agents))
