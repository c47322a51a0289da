"""Harbor's container environments (docker, podman) as harbor-env runs them: one compose overlay.

Harbor's compose files keep the `main` container alive with `sh -c "sleep infinity"`. The shell
is PID 1 and `sleep` its child, which gives an agent three things it should not have, and this
overlay (compose/main-*.yaml, the last file Harbor merges) takes them away:

- `command: ["sleep", "infinity"]`: `sleep` itself is PID 1. The kernel delivers no signal
  from inside a PID namespace to its init unless the init handles it, and `sleep` handles
  none: an agent (root in most images) cannot end the container by killing its keep-alive,
  which would turn its 0 into an errored episode that GRPO drops.
- `stop_signal: SIGKILL`: a PID 1 that ignores SIGTERM makes every `compose down` wait out
  the engine's 10 s grace period, about half of each episode here; nothing in an episode's
  container needs a graceful stop.
- `image: harbor-env/${MAIN_IMAGE_NAME}` (tasks Harbor builds): the image is named by the
  content hash of the task's environment folder (Harbor's own `hb__<hash>`) instead of the
  compose project, i.e. the trial. `delete = true` (`down --rmi local`) then removes
  containers, networks and volumes but keeps the image (docker compose keeps images with a
  name of their own; podman-compose keeps those whose name has a `/` and no `localhost/`), so
  the next episode of the task starts from it instead of running its Dockerfile again, and
  `delete = false` does not leave one tag per trial. Remove them with
  `podman rmi $(podman images -q 'harbor-env/*')` (or docker's equivalent).

- `labels: io.harbor-env.owner`: the env server that started the container, so that the
  containers of a killed env server are found and removed (container_reaper.py).

A task with its own `environment/docker-compose.yaml` gets no overlay: its services are its
author's to define.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from harbor.environments.definition import should_use_prebuilt_docker_image

from harbor_env.container_reaper import mark_owner, reap_now_and_then
from harbor_env.sandbox.task_info import read_task_toml

logger = logging.getLogger(__name__)

CONTAINER_TYPES = ("docker", "podman")
_OVERLAYS = Path(__file__).parent / "compose"


def compose_overlays(environment_type: str, task_dir: Path, *, force_build: bool = False) -> list[Path]:
    """The compose files harbor-env adds to a trial of the task in `task_dir` (none for other
    environment types, and for tasks that bring their own compose file)."""
    environment_dir = task_dir / "environment"
    if environment_type not in CONTAINER_TYPES or (environment_dir / "docker-compose.yaml").exists():
        return []
    environment = read_task_toml(task_dir).get("environment")
    docker_image = environment.get("docker_image") if isinstance(environment, dict) else None
    prebuilt = should_use_prebuilt_docker_image(environment_dir, docker_image=docker_image, force_build=force_build)
    return [_OVERLAYS / ("main-prebuilt.yaml" if prebuilt else "main-build.yaml")]


async def before_trial(environment_type: str) -> None:
    """On a container engine: label what this process starts as its own, and remove what killed
    env servers left (container_reaper.py)."""
    if environment_type not in CONTAINER_TYPES:
        return
    mark_owner()
    try:
        reaped = await reap_now_and_then(environment_type)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        logger.warning("could not look for containers of killed env servers: %s", exc)
        return
    if reaped:
        logger.info("removed %d container(s) of killed env servers: %s", len(reaped), ", ".join(reaped))
