"""Verification the agent cannot reach: nothing of the agent runs, and the verifier's inputs are new.

When verification starts (a Harbor trial hook, for every environment type), one root command
in the environment

1. stops every process but the environment's init (PID 1) and the chain of processes running
   this command (an exec daemon, where the environment has one): `kill -STOP -1` freezes them
   all in one system call, so a process forking in a loop cannot outrun it, then each is
   killed. A writer the agent left behind (`nohup`, `setsid`, a tmux session, a loop in its own
   pane) cannot overwrite the reward after the tests wrote it;
2. removes the tests folder and empties the verifier's log folder without following anything
   the agent planted (`rm` removes a symbolic link, never its target), then re-creates them, so
   Harbor's upload of the tests cannot write through a link onto another path.

An environment may bring its own way (`prepare_verifier()`): the local sandbox runs the same
command, or, in its fresh mode, moves the agent's working directory into a new sandbox.
"""

from __future__ import annotations

import shlex
from typing import Protocol, runtime_checkable

from harbor.environments.base import BaseEnvironment
from harbor.models.trial.paths import EnvironmentPaths

from harbor_env.errors import VerifierIsolationError

# POSIX sh (dash, busybox, bash). $1: the tests folder, $2: the verifier's log folder.
ISOLATION_SCRIPT = r"""
tests=$1 verifier=$2
field() { # field NAME PID: a line of /proc/PID/status, without forking
  while read -r key value; do [ "$key" = "$1:" ] && { echo "$value"; return; }; done 2>/dev/null < "/proc/$2/status"
}
keep=" 1 $$ " pid=$$
while parent=$(field PPid $pid) && [ -n "$parent" ] && [ "$parent" != 0 ]; do
  keep="$keep$parent " pid=$parent
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
rm -rf -- "$tests"
mkdir -p -- "$tests"
[ -L "$verifier" ] && rm -f -- "$verifier"
mkdir -p -- "$verifier"
rm -rf -- "$verifier"/* "$verifier"/.[!.]* "$verifier"/..?*
chmod 777 "$verifier"
[ -d "$tests" ] && [ ! -L "$tests" ] && [ -d "$verifier" ] && [ ! -L "$verifier" ] && [ -z "$(ls -A "$verifier")" ]
"""
ISOLATION_TIMEOUT_SEC = 60


@runtime_checkable
class PreparesVerifier(Protocol):
    async def prepare_verifier(self) -> None: ...


def isolation_command(environment: BaseEnvironment) -> str:
    paths = EnvironmentPaths.for_os(environment.os)
    return " ".join(
        [
            "sh",
            "-c",
            shlex.quote(ISOLATION_SCRIPT),
            "isolate",
            shlex.quote(str(paths.tests_dir)),
            shlex.quote(str(paths.verifier_dir)),
        ]
    )


async def run_isolation_command(environment: BaseEnvironment) -> None:
    """Stop the agent's processes and re-create the verifier's folders with one root command."""
    result = await environment.exec(isolation_command(environment), user="root", timeout_sec=ISOLATION_TIMEOUT_SEC)
    if result.return_code != 0:
        raise VerifierIsolationError(
            f"could not isolate the verifier from the agent (exit {result.return_code}): "
            f"{(result.stderr or '').strip()[-500:]}"
        )


async def isolate_verifier(environment: BaseEnvironment) -> None:
    if isinstance(environment, PreparesVerifier):
        await environment.prepare_verifier()
    else:
        await run_isolation_command(environment)
