"""Verification the agent cannot reach: nothing of the agent runs, and the verifier's inputs are new.

When verification starts (a Harbor trial hook, for every environment type), one root command
in the environment

1. stops every process but the environment's own: the init (PID 1), the processes that were
   running when the environment had started, before the agent was set up (a container's
   keep-alive `sleep`, a cloud sandbox's exec daemon), matched by PID *and* start time so a
   recycled PID is not spared, and the chain of processes running this command. `kill -STOP -1`
   freezes them all in one system call, so a process forking in a loop cannot outrun it, then
   each is killed. A writer the agent left behind (`nohup`, `setsid`, a tmux session, a loop in
   its own pane) cannot overwrite the reward after the tests wrote it;
2. removes the tests folder and empties the verifier's log folder without following anything
   the agent planted (`rm` removes a symbolic link, never its target), then re-creates them, so
   Harbor's upload of the tests cannot write through a link onto another path.

The environment's own processes are listed once, right after the environment starts
(`VerifierGuard.environment_started`): in a container, PID 1 is often a shell whose child keeps
it alive (`sh -c "sleep infinity"`, Harbor's compose files); killing that child ends PID 1 and
with it the container, and every episode would error (exit 137) in the verifier phase.

An environment may bring its own way (`prepare_verifier()`): the local sandbox runs the same
command, or, in its fresh mode, moves the agent's working directory into a new sandbox.
"""

from __future__ import annotations

import shlex
from typing import Protocol, runtime_checkable

from harbor.environments.base import BaseEnvironment
from harbor.models.trial.paths import EnvironmentPaths

from harbor_env.errors import VerifierIsolationError

# POSIX sh (dash, busybox, bash), shared by both scripts: `started PID` sets $start to the
# process's start time (field 22 of /proc/PID/stat, after the command name in parentheses,
# which may hold spaces), without forking.
_STARTED = r"""
started() {
  start=
  read -r stat 2>/dev/null < "/proc/$1/stat" || return 1
  set -f; set -- ${stat##*") "}; set +f
  [ $# -ge 20 ] && shift 19 && start=$1
}
"""

# Prints the working directory it starts in (the environment's WORKDIR), then "PID:START" of
# every process but its own, on one line.
SNAPSHOT_SCRIPT = (
    _STARTED
    + r"""
pwd
listed=
for dir in /proc/[0-9]*; do
  pid=${dir#/proc/}
  [ "$pid" = $$ ] && continue
  started "$pid" && listed="$listed $pid:$start"
done
echo "$listed"
"""
)

# $1: the tests folder, $2: the verifier's log folder, $3: the environment's own processes
# (SNAPSHOT_SCRIPT's output; empty: only PID 1 is the environment's), $4: WORKDIR (or empty).
ISOLATION_SCRIPT = (
    _STARTED
    + r"""
tests=$1 verifier=$2 own=" $3 " workdir=$4
field() { # field NAME PID: a line of /proc/PID/status, without forking
  while read -r key value; do [ "$key" = "$1:" ] && { echo "$value"; return; }; done 2>/dev/null < "/proc/$2/status"
}
keep=" 1 $$ " pid=$$
while parent=$(field PPid $pid) && [ -n "$parent" ] && [ "$parent" != 0 ]; do
  keep="$keep$parent " pid=$parent
done
for dir in /proc/[0-9]*; do
  pid=${dir#/proc/}
  started "$pid" && case "$own" in *" $pid:$start "*) keep="$keep$pid " ;; esac
done
round=0
while :; do
  kill -s STOP -1 2>/dev/null
  for pid in $keep; do kill -s CONT "$pid" 2>/dev/null; done
  left=0
  for dir in /proc/[0-9]*; do
    pid=${dir#/proc/}
    case "$keep" in *" $pid "*) continue ;; esac
    while read -r key state rest; do [ "$key" = State: ] && break; done 2>/dev/null < "$dir/status"
    case "$state" in Z | X | "") continue ;; esac
    kill -s KILL "$pid" 2>/dev/null
    left=$((left + 1))
  done
  [ "$left" = 0 ] && break
  round=$((round + 1))
  if [ "$round" -ge 100 ]; then echo "$left process(es) still running after SIGKILL" >&2; exit 1; fi
  sleep 0.05
done
# The agent removed WORKDIR or put a file or a dangling link there: the tests (and Harbor's
# exec, which starts in WORKDIR) find an empty one, and score what the agent left.
if [ -n "$workdir" ] && [ ! -d "$workdir" ]; then
  rm -rf -- "$workdir"
  mkdir -p -- "$workdir"
fi
# FIFOs, sockets and device nodes in WORKDIR: a test that reads one would block until its
# timeout (an errored episode), so they go; no task's output is one.
if [ -n "$workdir" ] && [ ! -L "$workdir" ] && command -v find >/dev/null 2>&1; then
  find "$workdir/" -xdev \( -type p -o -type s -o -type b -o -type c \) -exec rm -f -- {} + 2>/dev/null
fi
rm -rf -- "$tests"
mkdir -p -- "$tests"
[ -L "$verifier" ] && rm -f -- "$verifier"
mkdir -p -- "$verifier"
rm -rf -- "$verifier"/* "$verifier"/.[!.]* "$verifier"/..?*
chmod 777 "$verifier"
[ -d "$tests" ] && [ ! -L "$tests" ] && [ -d "$verifier" ] && [ ! -L "$verifier" ] && [ -z "$(ls -A "$verifier")" ]
"""
)
ISOLATION_TIMEOUT_SEC = 60


@runtime_checkable
class PreparesVerifier(Protocol):
    async def prepare_verifier(self) -> None: ...


def isolation_command(environment: BaseEnvironment, own_processes: str = "", workdir: str = "") -> str:
    paths = EnvironmentPaths.for_os(environment.os)
    arguments = [str(paths.tests_dir), str(paths.verifier_dir), own_processes, workdir]
    return " ".join(["sh", "-c", shlex.quote(ISOLATION_SCRIPT), "isolate", *map(shlex.quote, arguments)])


async def run_isolation_command(environment: BaseEnvironment, own_processes: str = "", workdir: str = "") -> None:
    """Stop the agent's processes and re-create the verifier's folders with one root command.
    It runs from `/`: WORKDIR, where commands start by default, may be gone."""
    command = isolation_command(environment, own_processes, workdir)
    result = await environment.exec(command, cwd="/", user="root", timeout_sec=ISOLATION_TIMEOUT_SEC)
    if result.return_code != 0:
        raise VerifierIsolationError(
            f"could not isolate the verifier from the agent (exit {result.return_code}): "
            f"{(result.stderr or '').strip()[-500:]}"
        )


async def list_own_processes(environment: BaseEnvironment) -> tuple[str, str]:
    """The environment's WORKDIR and its processes now ("PID:START ..."), before anything of the
    agent runs."""
    command = " ".join(["sh", "-c", shlex.quote(SNAPSHOT_SCRIPT)])
    result = await environment.exec(command, user="root", timeout_sec=ISOLATION_TIMEOUT_SEC)
    if result.return_code != 0:
        raise VerifierIsolationError(
            f"could not list the environment's own processes (exit {result.return_code}): "
            f"{(result.stderr or '').strip()[-500:]}"
        )
    workdir, _, processes = (result.stdout or "").partition("\n")
    return workdir.strip(), processes.strip()


class VerifierGuard:
    """Isolation of one trial's verifier: `environment_started` once the environment is up,
    before the agent is set up; `verification_starts` when the verifier is about to run."""

    def __init__(self, environment: BaseEnvironment):
        self.environment = environment
        self.own_processes: str | None = None
        self.workdir = ""

    async def environment_started(self) -> None:
        if not isinstance(self.environment, PreparesVerifier):
            self.workdir, self.own_processes = await list_own_processes(self.environment)

    async def verification_starts(self) -> None:
        if isinstance(self.environment, PreparesVerifier):
            await self.environment.prepare_verifier()
            return
        if self.own_processes is None:
            raise VerifierIsolationError("the environment's own processes were never listed (did it start?)")
        await run_isolation_command(self.environment, self.own_processes, self.workdir)
