"""Shared fixtures: sandboxes, and episodes of HarborEnvironment (a fake inference server, one
env server for the session and its client). The helpers live in harbor_env.testing; the names
other test modules import from here are re-exported."""

from __future__ import annotations

from harbor_env.testing.defaults import apply_environment_defaults

apply_environment_defaults()  # before Harbor or verifiers load; env servers inherit it

import contextlib  # noqa: E402
import importlib.util  # noqa: E402
import inspect  # noqa: E402
from collections.abc import AsyncIterator, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from harbor.environments.base import BaseEnvironment  # noqa: E402
from harbor.models.task.task import Task  # noqa: E402
from harbor.models.trial.paths import TrialPaths  # noqa: E402

from harbor_env.sandbox import LocalSandbox  # noqa: E402
from harbor_env.testing.processes import (  # noqa: E402, F401
    descendant_processes,
    foreign_processes,
    pid_namespace,
    processes_in,
)
from harbor_env.testing.tasks import REPO, SAMPLE_TASKS, write_task  # noqa: E402, F401

# Harbor 0.25 hands an environment its log directories as `auto_mounts` (bound to the host
# only with `auto_mounting`); earlier versions as `mounts`, always bound.
HARBOR_AUTO_MOUNTING = "auto_mounting" in inspect.signature(BaseEnvironment.__init__).parameters


def make_sandbox(task_dir: Path, work: Path, session: str = "probe", **kwargs) -> LocalSandbox:
    """A LocalSandbox for `task_dir` with Harbor's log mounts, as a Trial would build it."""
    task = Task(task_dir)
    trial_paths = TrialPaths(work / "trials" / session)
    trial_paths.mkdir()
    mounts = [
        {"type": "bind", "source": str(trial_paths.verifier_dir), "target": "/logs/verifier"},
        {"type": "bind", "source": str(trial_paths.agent_dir), "target": "/logs/agent"},
        {"type": "bind", "source": str(trial_paths.artifacts_dir), "target": "/logs/artifacts"},
    ]
    kwargs.setdefault("sandbox_dir", str(work / "sandboxes"))
    return LocalSandbox(
        environment_dir=task.paths.environment_dir,
        environment_name=task.name,
        session_id=session,
        trial_paths=trial_paths,
        task_env_config=task.config.environment.model_copy(deep=True),
        **{"auto_mounts" if HARBOR_AUTO_MOUNTING else "mounts": mounts},
        **kwargs,
    )


@contextlib.asynccontextmanager
async def running(sandbox: LocalSandbox) -> AsyncIterator[LocalSandbox]:
    await sandbox.start(force_build=False)
    try:
        yield sandbox
    finally:
        await sandbox.stop(delete=True)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(scope="session")
def image_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local sandbox's image cache for the session's image-mode tests (one build per image)."""
    return tmp_path_factory.mktemp("image-cache")


# ---------------------------------------------------------------------------- HarborEnvironment episodes

if importlib.util.find_spec("verifiers") is not None:  # the sandbox-only stack has no verifiers
    from verifiers.v1.serve import EnvClient

    from harbor_env.testing.configs import env_config
    from harbor_env.testing.env_server import connected, env_server_process
    from harbor_env.testing.inference import FakeInferenceServer
    from harbor_env.testing.policies import SOLVING
    from harbor_env.testing.tokenizer import build_test_tokenizer

    @pytest.fixture(scope="session")
    def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
        return build_test_tokenizer(tmp_path_factory.mktemp("tokenizer"))

    @pytest.fixture
    def inference(tokenizer: Path) -> Iterator[FakeInferenceServer]:
        with FakeInferenceServer(tokenizer, SOLVING) as server:
            yield server

    @pytest.fixture(scope="session")
    def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
        """One env server process for the whole test session (starting one costs ~30 s of imports here).

        Its taskset config does not limit what it runs: each request carries its task's folder.
        Yields the server's address and its work folder (trials/ and sandboxes/ live there).
        """
        work = tmp_path_factory.mktemp("served")
        with env_server_process(env_config(work, include=["repair-config"], keep_trials=True)) as (_, address):
            yield address, work

    @pytest.fixture
    async def client(served: tuple[str, Path]) -> AsyncIterator[EnvClient]:
        async with connected(served[0]) as client:
            yield client

    @pytest.fixture
    def served_work(served: tuple[str, Path]) -> Path:
        return served[1]
