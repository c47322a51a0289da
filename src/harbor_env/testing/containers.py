"""The container engine the tests run episodes on: podman, as scripts/containers/setup.sh makes it."""

from __future__ import annotations

import json
import shutil
import subprocess

from harbor_env.container_reaper import OWNER_LABEL

BASE_IMAGE = "docker.io/library/debian:bookworm-slim"  # one of the tags setup.sh gives its base image
SETUP = "bash scripts/containers/setup.sh"


def podman_unready() -> str | None:
    """Why Harbor's podman environment cannot run here, or None when it can."""
    from harbor.models.environment_type import EnvironmentType

    if not hasattr(EnvironmentType, "PODMAN"):
        return "this Harbor has no podman environment (it came in 0.24)"
    for tool in ("podman", "podman-compose"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (run `{SETUP}`)"
    if subprocess.run(["podman", "image", "exists", BASE_IMAGE], capture_output=True).returncode != 0:
        return f"no base image {BASE_IMAGE} (run `{SETUP}`)"
    probe = subprocess.run(
        ["podman", "run", "--rm", "--network", "none", BASE_IMAGE, "true"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return f"podman cannot run a container ({probe.stderr.strip()[-200:]}; run `{SETUP}`)"
    return None


def image_mode_unready() -> str | None:
    """Why the local sandbox's image mode cannot build the tests' images here, or None."""
    if shutil.which("podman") is None:
        return f"podman is not installed (run `{SETUP}`)"
    if subprocess.run(["podman", "image", "exists", BASE_IMAGE], capture_output=True).returncode != 0:
        return f"no base image {BASE_IMAGE} (run `{SETUP}`)"
    return None


def podman(*args: str) -> str:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def our_containers() -> list[str]:
    """Names of the containers harbor-env started (its owner label), running or not."""
    return podman("ps", "-a", "--filter", f"label={OWNER_LABEL}", "--format", "{{.Names}}").split()


def leftovers() -> dict[str, list[str]]:
    """What trials may leave on the engine: containers, pods, networks (but podman's own), volumes."""
    networks = [n["name"] for n in json.loads(podman("network", "ls", "--format", "json")) if n["name"] != "podman"]
    return {
        "containers": podman("ps", "-a", "--format", "{{.Names}}").split(),
        "pods": podman("pod", "ls", "--format", "{{.Name}}").split(),
        "networks": networks,
        "volumes": podman("volume", "ls", "--format", "{{.Name}}").split(),
    }
