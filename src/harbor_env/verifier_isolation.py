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

Then every command runs through the guard (`VerifierGuard`): right after the tests' command
exits, everything they started is stopped and the reward file they never write is removed
(Harbor prefers reward.json to reward.txt: a script of the agent's that the tests run could
otherwise plant it); and the tests run with PATH and PYTHONPATH stripped of WORKDIR's entries.

The preparation and the tests share the task's verifier timeout (Harbor's own clock starts only
after the preparation). Running out of it while the environment still answers is the agent's
doing (a program of its own the tests wait on, a child holding their `$(...)` open, a WORKDIR
too large to check): the guard stops everything and the episode scores 0 (`VerifierForfeit`),
where an errored episode would be dropped from GRPO and the agent would learn to hang.

An environment may bring its own way (`prepare_verifier()`): the local sandbox runs the same
command, or, in its fresh mode, moves the agent's working directory into a new sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from harbor.environments.base import BaseEnvironment
from harbor.models.trial.paths import EnvironmentPaths

from harbor_env.errors import InvalidInputError, VerifierForfeit, VerifierIsolationError

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

# Prints the working directory it starts in (the environment's WORKDIR), the image's PATH and
# PYTHONPATH (one line each, "-" for an unset PYTHONPATH), "PID:START" of every process but its
# own on one line, then WORKDIR's entries with plain names (the task's own), on one line.
SNAPSHOT_SCRIPT = (
    _STARTED
    + r"""
pwd
printf '%s\n%s\n' "$PATH" "${PYTHONPATH--}"
listed=
for dir in /proc/[0-9]*; do
  pid=${dir#/proc/}
  [ "$pid" = $$ ] && continue
  started "$pid" && listed="$listed $pid:$start"
done
echo "$listed"
entries=
for entry in * .[!.]*; do
  case "$entry" in *[!A-Za-z0-9_.-]* | "*" | ".[!.]*") continue ;; esac
  entries="$entries $entry"
done
echo "$entries"
"""
)

# Stops every process but PID 1, the chain of processes running the script and those in $own
# (" PID:START ... "): `kill -STOP -1` freezes them all in one system call, then each is killed.
_STOP_OTHERS = r"""
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
"""

# Prints the entries of WORKDIR ($1) the agent added (not in $2, " NAME ... ") that a Python run
# there (`python3 -m pytest|unittest`, `python3 -c`) would import in place of a module it finds
# elsewhere (the standard library, site-packages outside WORKDIR): a `unittest.py` exiting 0, a
# `json.py` calling os._exit(0). Run with -I: it trusts nothing of WORKDIR itself.
SHADOWING_MODULES = r"""
import importlib.machinery, os, pkgutil, sys
workdir, kept = sys.argv[1], set(sys.argv[2].split())
root = os.path.realpath(workdir) + "/"
paths = [p for p in sys.path if p and os.path.isdir(p) and not (os.path.realpath(p) + "/").startswith(root)]
names = set(getattr(sys, "stdlib_module_names", ())) | {m.name for m in pkgutil.iter_modules(paths)}
suffixes = sorted(importlib.machinery.all_suffixes(), key=len, reverse=True)
for entry in sorted(set(os.listdir(workdir)) - kept):
    path = os.path.join(workdir, entry)
    if os.path.isdir(path):
        name = entry if any(os.path.isfile(os.path.join(path, "__init__" + s)) for s in suffixes) else ""
    else:
        name = next((entry[: -len(s)] for s in suffixes if entry.endswith(s)), "")
    if name.isidentifier() and name in names:
        print(entry)
"""
# git config keys kept in WORKDIR's repositories: none of them runs a program (core.fsmonitor,
# core.hooksPath, diff.external, filter.*.clean, gpg.program, ... would, in the tests' git calls).
GIT_KEYS_KEPT = (
    r"^(core\.(repositoryformatversion|filemode|bare|logallrefupdates|ignorecase|precomposeunicode|symlinks|"
    r"autocrlf|eol|safecrlf|quotepath|abbrev|compression|loosecompression|bigfilethreshold|sparsecheckout|"
    r"sparsecheckoutcone|commentchar|whitespace|untrackedcache|checkstat|trustctime|multipackindex|commitgraph)|"
    r"extensions\.[a-z0-9]+|init\.defaultbranch|(user|author|committer)\.(name|email)|"
    r"remote\..+\.(url|pushurl|fetch|push|tagopt|mirror)|branch\..+\.(remote|merge|rebase)|"
    r"submodule\..+\.(url|path|active|branch)|diff\.(renames|algorithm|noprefix|mnemonicprefix|context)|"
    r"(gc|pack|index|color|log|advice|status|pull|fetch|rerere)\.[a-z0-9]+|merge\.(conflictstyle|ff))$"
)
# $1: the tests folder, $2: the verifier's log folder, $3: the environment's own processes
# (SNAPSHOT_SCRIPT's output; empty: only PID 1 is the environment's), $4: WORKDIR (or empty),
# $5: WORKDIR's entries at the start (the task's own), $6: SHADOWING_MODULES (empty: modules in
# WORKDIR are kept), $7: GIT_KEYS_KEPT.
ISOLATION_SCRIPT = (
    _STARTED
    + r"""
tests=$1 verifier=$2 own=" $3 " workdir=$4 kept=" $5 " shadowing=$6 git_keys=$7
"""
    + _STOP_OTHERS
    + r"""
# The agent removed WORKDIR or put a file or a dangling link there: the tests (and Harbor's
# exec, which starts in WORKDIR) find an empty one, and score what the agent left.
if [ -n "$workdir" ] && [ ! -d "$workdir" ]; then
  rm -rf -- "$workdir"
  mkdir -p -- "$workdir"
fi
# Links in WORKDIR into the folders the verifier fills after this (the tests, their logs): an
# `output.txt -> /tests/expected.txt` would hand the tests their own answer.
if [ -n "$workdir" ] && [ ! -L "$workdir" ] && command -v find >/dev/null 2>&1; then
  TESTS=$tests VERIFIER=$verifier find "$workdir/" -xdev -type l -exec sh -c '
    for link do
      case "$(readlink -f -- "$link" 2>/dev/null)/" in "$TESTS"/* | "$VERIFIER"/*) rm -f -- "$link" ;; esac
    done' unlink {} + 2>/dev/null
fi
# FIFOs, sockets and device nodes in WORKDIR: a test that reads one would block until its
# timeout (an errored episode), so they go; no task's output is one.
if [ -n "$workdir" ] && [ ! -L "$workdir" ] && command -v find >/dev/null 2>&1; then
  find "$workdir/" -xdev \( -type p -o -type s -o -type b -o -type c \) -exec rm -f -- {} + 2>/dev/null
fi
# Modules the agent added to WORKDIR in place of ones the tests' Python imports elsewhere.
if [ -n "$shadowing" ] && [ -n "$workdir" ] && [ "$workdir" != / ] && [ ! -L "$workdir" ]; then
  for python in python3 python; do
    python=$(command -v "$python") || continue
    case "$(readlink -f -- "$python")/" in "$workdir"/*) continue ;; esac  # the agent's own
    "$python" -I -c "$shadowing" "$workdir" "$kept" 2>/dev/null
  done | sort -u | while IFS= read -r entry; do
    rm -rf -- "$workdir/$entry" && echo "removed-module $entry"
  done
fi
# WORKDIR's git repositories: only config keys that run nothing, no hooks. Nothing that resolves
# outside WORKDIR is touched (a link there is the image's file, or the agent's anyway).
real_workdir=$(readlink -f -- "$workdir")
inside() { case "$(readlink -f -- "$1")/" in "$real_workdir"/?*) return 0 ;; esac; return 1; }
clean_git_dir() {
  for config in "$1/config" "$1/config.worktree" "$1"/modules/*/config "$1"/worktrees/*/config.worktree; do
    [ -f "$config" ] && inside "$config" || continue
    rm -f -- "$config.harbor-env"
    git config -f "$config" --name-only --list 2>/dev/null | grep -Ei -- "$git_keys" | sort -u |
      while IFS= read -r key; do
        git config -f "$config" --get-all "$key" | while IFS= read -r value; do
          git config -f "$config.harbor-env" --add "$key" "$value"
        done
      done
    touch "$config.harbor-env" && mv -f -- "$config.harbor-env" "$config"
  done
  for hook in "$1"/hooks/* "$1"/modules/*/hooks/*; do
    case "$hook" in *.sample) ;; *) [ -e "$hook" ] && inside "$hook" && rm -rf -- "$hook" ;; esac
  done
}
if [ -n "$workdir" ] && [ -d "$workdir" ] && [ ! -L "$workdir" ] && command -v git >/dev/null 2>&1 &&
  command -v find >/dev/null 2>&1; then
  find "$workdir/" -xdev -maxdepth 5 -name .git 2>/dev/null | while IFS= read -r dotgit; do
    gitdir=$dotgit
    if [ -f "$dotgit" ] && [ ! -L "$dotgit" ]; then  # "gitdir: PATH" (a worktree, a submodule)
      read -r label gitdir < "$dotgit" 2>/dev/null
      case "$gitdir" in /*) ;; *) gitdir=${dotgit%/.git}/$gitdir ;; esac
    fi
    if [ -d "$gitdir" ] && inside "$gitdir"; then clean_git_dir "$gitdir"; else rm -rf -- "$dotgit"; fi
  done
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

# Right after the tests exit, before Harbor reads the reward: nothing the tests started runs on
# (a daemon of the agent's code rewriting the reward), and the reward file the tests never
# write is gone (Harbor prefers reward.json to reward.txt). $1: the verifier's log folder,
# $2: the environment's own processes, $3: the reward file to remove (or empty).
AFTER_TESTS_SCRIPT = (
    _STARTED
    + r"""
verifier=$1 own=" $2 " drop=$3
"""
    + _STOP_OTHERS
    + r"""
[ -z "$drop" ] || rm -f -- "$verifier/$drop"
"""
)
ISOLATION_TIMEOUT_SEC = 60
KEEP_WORKDIR_PATHS_KEY = "verifier_keeps_workdir_paths"  # task.toml [metadata]: trust them
logger = logging.getLogger(__name__)


@runtime_checkable
class PreparesVerifier(Protocol):
    async def prepare_verifier(self, timeout_sec: int | None = None, keep_workdir_modules: bool = False) -> None: ...


def isolation_command(
    environment: BaseEnvironment,
    own_processes: str = "",
    workdir: str = "",
    workdir_entries: str = "",
    keep_workdir_modules: bool = False,
) -> str:
    paths = EnvironmentPaths.for_os(environment.os)
    arguments = [
        str(paths.tests_dir),
        str(paths.verifier_dir),
        own_processes,
        workdir,
        workdir_entries,
        "" if keep_workdir_modules else SHADOWING_MODULES,
        GIT_KEYS_KEPT,
    ]
    return " ".join(["sh", "-c", shlex.quote(ISOLATION_SCRIPT), "isolate", *map(shlex.quote, arguments)])


async def run_isolation_command(
    environment: BaseEnvironment,
    own_processes: str = "",
    workdir: str = "",
    timeout_sec: int = ISOLATION_TIMEOUT_SEC,
    *,
    workdir_entries: str = "",
    keep_workdir_modules: bool = False,
) -> list[str]:
    """Stop the agent's processes and re-create the verifier's folders with one root command;
    returns the modules it removed from WORKDIR. It runs from `/`: WORKDIR, where commands
    start by default, may be gone."""
    command = isolation_command(environment, own_processes, workdir, workdir_entries, keep_workdir_modules)
    result = await environment.exec(command, cwd="/", user="root", timeout_sec=timeout_sec)
    if result.return_code != 0:
        raise VerifierIsolationError(
            f"could not isolate the verifier from the agent (exit {result.return_code}): "
            f"{(result.stderr or '').strip()[-500:]}"
        )
    lines = (line.strip() for line in (result.stdout or "").splitlines())
    return [line.removeprefix("removed-module ") for line in lines if line.startswith("removed-module ")]


def warn_removed_modules(log: logging.Logger, task: str, removed: list[str]) -> None:
    if removed:
        log.warning(
            f"task {task}: removed {', '.join(removed[:5])} from WORKDIR before the tests: the agent added "
            f"them, and a Python run there would import them in place of the modules of that name; tests "
            f"that need such a module of the agent's: [metadata] {KEEP_WORKDIR_PATHS_KEY} = true in task.toml"
        )


@dataclass(frozen=True)
class StartState:
    """What an environment is before the agent runs: its WORKDIR, the search paths its image
    sets, its own processes ("PID:START ...") and what is in WORKDIR."""

    workdir: str
    search_paths: dict[str, str]
    own_processes: str
    workdir_entries: str = ""  # WORKDIR's entries with plain names (" NAME ..."): the task's own


async def list_own_processes(environment: BaseEnvironment) -> StartState:
    """The environment's WORKDIR, search paths and processes now, before anything of the agent runs."""
    command = " ".join(["sh", "-c", shlex.quote(SNAPSHOT_SCRIPT)])
    result = await environment.exec(command, user="root", timeout_sec=ISOLATION_TIMEOUT_SEC)
    if result.return_code != 0:
        raise VerifierIsolationError(
            f"could not list the environment's own processes (exit {result.return_code}): "
            f"{(result.stderr or '').strip()[-500:]}"
        )
    # Strip each line: a container's exec may answer through a terminal (CRLF line ends).
    lines = [line.strip() for line in (result.stdout or "").splitlines()]
    if len(lines) < 3:
        raise VerifierIsolationError(f"could not list the environment's own processes: {result.stdout[-300:]!r}")
    workdir, path, pythonpath, processes, entries = (lines + ["", ""])[:5]
    search_paths = {"PATH": path} if pythonpath == "-" else {"PATH": path, "PYTHONPATH": pythonpath}
    return StartState(workdir, search_paths, processes, entries)


def search_paths_for_the_verifier(search_paths: dict[str, str], workdir: str) -> dict[str, str]:
    """The variables of `search_paths` (PATH, PYTHONPATH) that hold WORKDIR, a folder in it or a
    relative entry, without those entries: an image's `ENV PYTHONPATH=/app` or
    `ENV PATH=/app/.venv/bin:$PATH` would otherwise run the agent's `sitecustomize.py` or a
    `python3` of its own in every test. Empty when nothing needs to change."""
    root = workdir.rstrip("/")
    changed = {}
    for name, value in search_paths.items():
        entries = value.split(":")
        kept = [e for e in entries if e.startswith("/") and e.rstrip("/") != root and not e.startswith(root + "/")]
        if root and kept != entries:
            changed[name] = ":".join(kept)
    return changed


def keeps_workdir_paths(metadata: dict) -> bool:
    """The task's `[metadata] verifier_keeps_workdir_paths`: its tests need WORKDIR's entries."""
    return metadata.get(KEEP_WORKDIR_PATHS_KEY) is True


def warn_search_paths_once(log: logging.Logger, task: str, changed: dict[str, str]) -> None:
    # Imported here: harbor_env.sandbox (its package) imports this module.
    from harbor_env.sandbox.host_support import warn_once

    warn_once(
        log,
        ("verifier search paths", task),
        f"task {task}: the verifier runs with {' and '.join(sorted(changed))} without WORKDIR's entries "
        f"(the agent controls WORKDIR); tests that need them: [metadata] {KEEP_WORKDIR_PATHS_KEY} = true "
        "in task.toml",
    )


REWARD_FILES = ("reward.txt", "reward.json")
REWARD_FILE_KEY = "reward_file"  # task.toml [metadata]: the one the tests write
_SCANNED_BYTES = 1 << 20


def unwritten_reward_file(tests_dir: Path, metadata: dict) -> str:
    """The reward file the task's tests never write, to be removed after they run ("" when both
    may be written or it cannot be told): `[metadata] reward_file`, else the only one of
    reward.txt / reward.json named anywhere in the tests folder."""
    declared = metadata.get(REWARD_FILE_KEY)
    if declared is not None:
        if declared not in REWARD_FILES:
            raise InvalidInputError(
                f"{tests_dir.parent / 'task.toml'}: [metadata] {REWARD_FILE_KEY} must be one of "
                f"{', '.join(REWARD_FILES)}, got {declared!r}"
            )
        return next(name for name in REWARD_FILES if name != declared)
    files = []
    for path in sorted(tests_dir.rglob("*")):
        with contextlib.suppress(OSError):
            if path.is_file():
                state = path.stat()
                files.append((path, state.st_mtime_ns, state.st_size))
    named = _reward_files_named(tuple(files))
    return next(name for name in REWARD_FILES if name not in named) if len(named) == 1 else ""


@functools.lru_cache(maxsize=4096)
def _reward_files_named(files: tuple[tuple[Path, int, int], ...]) -> frozenset[str]:
    """Which reward files these (path, mtime, size) files name: each task's tests are read once
    per process, not once per episode, and again only when they change."""
    named = set()
    for path, _, _ in files:
        with contextlib.suppress(OSError):
            text = path.read_bytes()[:_SCANNED_BYTES]
            named.update(name for name in REWARD_FILES if name.encode() in text)
    return frozenset(named)


# The guard's clock runs out this much before Harbor's (which starts after the preparation), so
# that stopping what still runs happens before Harbor cancels the verifier.
FORFEIT_MARGIN_SEC = 10.0


class VerifierGuard:
    """Isolation of one trial's verifier: `environment_started` once the environment is up,
    before the agent is set up; `verification_starts` when the verifier is about to run.

    From then on every command of the environment runs through the guard: the tests' command is
    followed at once by AFTER_TESTS_SCRIPT (nothing they started lives on; the reward file they do
    not write is removed), and, unless the task keeps them (`keep_workdir_paths`), commands run
    with PATH and PYTHONPATH stripped of WORKDIR's entries (`search_paths_for_the_verifier`).

    With a `timeout_sec` (the task's verifier timeout), the preparation and the tests run on one
    clock; when it runs out and the environment still answers, `forfeit` says why and
    `VerifierForfeit` is raised: the episode scores 0 (outcome.py)."""

    def __init__(
        self,
        environment: BaseEnvironment,
        task: str = "",
        keep_workdir_paths: bool = False,
        unwritten_reward: str = "",
        timeout_sec: float | None = None,
    ):
        self.environment = environment
        self.task = task
        self.keep_workdir_paths = keep_workdir_paths
        self.unwritten_reward = unwritten_reward
        self.timeout_sec = timeout_sec
        self.start: StartState | None = None
        self.forfeit: str | None = None
        self._deadline: float | None = None

    async def environment_started(self) -> None:
        if not isinstance(self.environment, PreparesVerifier):
            self.start = await list_own_processes(self.environment)

    async def verification_starts(self) -> None:
        if self.timeout_sec:
            margin = min(FORFEIT_MARGIN_SEC, self.timeout_sec / 10)
            self._deadline = asyncio.get_running_loop().time() + self.timeout_sec - margin
        try:
            await asyncio.wait_for(self._prepare(), self._seconds_left())
        except Exception:
            if not self._out_of_time():
                raise
            # Our own command answers (the local sandbox is ours: its preparation is slow only
            # with what is in WORKDIR); else the environment must still answer a command.
            if isinstance(self.environment, PreparesVerifier) or await self._answers():
                self._give_up(f"preparing the verifier ran past the verifier's {self.timeout_sec:g} s")
            raise

    async def _prepare(self) -> None:
        if isinstance(self.environment, PreparesVerifier):
            # Its own search paths and WORKDIR's entries at the start (local.py).
            await self.environment.prepare_verifier(self._exec_limit(), keep_workdir_modules=self.keep_workdir_paths)
            self._run_commands_through_guard({}, own_processes="")
            return
        if self.start is None:
            raise VerifierIsolationError("the environment's own processes were never listed (did it start?)")
        removed = await run_isolation_command(
            self.environment,
            self.start.own_processes,
            self.start.workdir,
            timeout_sec=self._exec_limit(),
            workdir_entries=self.start.workdir_entries,
            keep_workdir_modules=self.keep_workdir_paths,
        )
        warn_removed_modules(logger, self.task, removed)
        changed = search_paths_for_the_verifier(self.start.search_paths, self.start.workdir)
        if changed and not self.keep_workdir_paths:
            warn_search_paths_once(logger, self.task, changed)
        else:
            changed = {}
        self._run_commands_through_guard(changed, own_processes=self.start.own_processes)

    def _seconds_left(self) -> float | None:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - asyncio.get_running_loop().time())

    def _out_of_time(self) -> bool:
        # (a timer may fire a hair early by the loop's clock)
        return self._deadline is not None and asyncio.get_running_loop().time() >= self._deadline - 0.01

    def _exec_limit(self, default: int | None = ISOLATION_TIMEOUT_SEC) -> int | None:
        """A command's own timeout: the clock's time left (the environment then kills it)."""
        left = self._seconds_left()
        return default if left is None else math.ceil(left) + 1

    async def _answers(self) -> bool:
        with contextlib.suppress(Exception):
            result = await self.environment.exec("true", cwd="/", user="root", timeout_sec=FORFEIT_MARGIN_SEC)
            return result.return_code == 0
        return False

    def _give_up(self, reason: str) -> None:
        self.forfeit = reason
        raise VerifierForfeit(f"{reason}, and the environment still answers: scored 0 (the agent's doing)")

    def _run_commands_through_guard(self, overrides: dict[str, str], own_processes: str) -> None:
        exec_ = self.environment.exec
        paths = EnvironmentPaths.for_os(self.environment.os)
        tests_output = str(paths.verifier_dir / "test-stdout.txt")  # in Harbor's command for the tests
        after_tests = " ".join(
            ["sh", "-c", shlex.quote(AFTER_TESTS_SCRIPT), "after-tests"]
            + [shlex.quote(a) for a in (str(paths.verifier_dir), own_processes, self.unwritten_reward)]
        )

        async def stop_what_the_tests_started() -> None:
            done = await exec_(after_tests, cwd="/", user="root", timeout_sec=ISOLATION_TIMEOUT_SEC)
            if done.return_code != 0:
                raise VerifierIsolationError(
                    f"could not stop what the tests started (exit {done.return_code}): "
                    f"{(done.stderr or '').strip()[-500:]}"
                )

        async def guarded_exec(command: str, cwd=None, env=None, timeout_sec=None, user=None):
            if overrides:
                env = {**overrides, **(env or {})}
            if tests_output not in command:
                return await exec_(command, cwd=cwd, env=env, timeout_sec=timeout_sec, user=user)
            # The tests, on the guard's clock; the environment's own timeout, a moment later, ends
            # the command there (what it started is stopped in any case).
            try:
                result = await asyncio.wait_for(
                    exec_(command, cwd=cwd, env=env, timeout_sec=self._exec_limit(timeout_sec), user=user),
                    self._seconds_left(),
                )
            except Exception:
                if not self._out_of_time():
                    raise
                result = None
            if self._out_of_time():
                await stop_what_the_tests_started()  # also the proof that the environment answers
                self._give_up(f"the tests ran past the verifier's {self.timeout_sec:g} s")
            await stop_what_the_tests_started()
            return result

        self.environment.exec = guarded_exec  # type: ignore[method-assign]
