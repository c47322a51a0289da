"""Containers of trials whose env server was killed: found by an owner label, removed.

Harbor removes a trial's containers and network when the trial ends (`delete = true`), but a
killed env server (`kill -9`, an out-of-memory kill) ends no trial, and a container that
sleeps forever outlives it. harbor-env's compose overlay (containers.py) labels the `main`
container with its owner: this host, the env server's PID and that process's start time (so a
reused PID is not mistaken for it). Before its first trial on a container engine (and then at
most once a minute), each env server removes the containers of dead owners and their compose
projects' networks, and

    python -m harbor_env.container_reaper [podman|docker]

does it on demand. Containers without the label (kept trials, anything not started by
harbor-env) are left alone; so are those of live owners and of other hosts.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time

from harbor_env.sandbox.reaper import process_start_time

OWNER_LABEL = "io.harbor-env.owner"
OWNER_VAR = "HARBOR_ENV_OWNER"  # what compose puts into the label (compose/main-*.yaml)
PROJECT_LABEL = "com.docker.compose.project"  # set by docker compose and podman-compose
REAP_INTERVAL_SEC = 60.0
ENGINE_TIMEOUT_SEC = 120
_last_reaped: dict[str, float] = {}


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{process_start_time(os.getpid())}"


def mark_owner() -> None:
    """Make compose, started by this process, label containers as this process's."""
    os.environ[OWNER_VAR] = owner()


def _owner_dead(value: str) -> bool:
    host, _, rest = value.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname():
        return False  # another host's env server: not ours to judge
    return not pid.isdigit() or process_start_time(int(pid)) != start


def _engine(engine: str, *args: str) -> str:
    done = subprocess.run([engine, *args], capture_output=True, text=True, timeout=ENGINE_TIMEOUT_SEC)
    if done.returncode != 0:
        raise RuntimeError(f"{engine} {' '.join(args[:2])} failed: {done.stderr.strip()[-300:]}")
    return done.stdout


def reap(engine: str) -> list[str]:
    """Remove the containers (and their projects' networks) of dead owners; return their names."""
    ids = _engine(engine, "ps", "-a", "-q", "--filter", f"label={OWNER_LABEL}").split()
    if not ids:
        return []
    template = (
        f'{{{{.Name}}}}\t{{{{index .Config.Labels "{OWNER_LABEL}"}}}}\t{{{{index .Config.Labels "{PROJECT_LABEL}"}}}}'
    )
    dead: list[str] = []
    projects: set[str] = set()
    for line in _engine(engine, "inspect", "--format", template, *ids).splitlines():
        name, _, rest = line.partition("\t")
        label, _, project = rest.partition("\t")
        if label and _owner_dead(label):
            dead.append(name.lstrip("/"))
            if project:
                projects.add(project)
    if dead:
        _engine(engine, "rm", "-f", "-v", *dead)
    for project in sorted(projects):
        networks = _engine(engine, "network", "ls", "-q", "--filter", f"label={PROJECT_LABEL}={project}").split()
        if networks:
            subprocess.run([engine, "network", "rm", *networks], capture_output=True, timeout=ENGINE_TIMEOUT_SEC)
    return dead


async def reap_now_and_then(engine: str) -> list[str]:
    """`reap`, at most every REAP_INTERVAL_SEC per engine and process."""
    now = time.monotonic()
    if now - _last_reaped.get(engine, -REAP_INTERVAL_SEC) < REAP_INTERVAL_SEC:
        return []
    _last_reaped[engine] = now
    return await asyncio.to_thread(reap, engine)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0] not in ("podman", "docker")):
        print("usage: python -m harbor_env.container_reaper [podman|docker]", file=sys.stderr)
        return 2
    engine = args[0] if args else "podman"
    try:
        reaped = reap(engine)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"container_reaper: {exc}", file=sys.stderr)
        return 1
    for name in reaped:
        print(f"reaped {name}")
    print(f"{len(reaped)} container(s) of dead owners reaped ({engine})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
