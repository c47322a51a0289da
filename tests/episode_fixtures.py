"""Fixtures of HarborEnvironment episodes: the test tokenizer, a fake inference server, one env
server for the session and its client. They need verifiers; conftest loads them where it is
installed (the sandbox-only stack has Harbor alone)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from episodes import INFERENCE_KEY, SOLVING, env_config
from verifiers.v1.serve import EnvClient, env_config_data, serve_env

from harbor_env.testing.inference import FakeInferenceServer
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
    os.environ["HARBOR_ENV_TEST_INFERENCE_KEY"] = INFERENCE_KEY  # inherited by the server
    context = multiprocessing.get_context("spawn")
    addresses = context.Queue()
    process = context.Process(
        target=serve_env,
        kwargs={
            "max_workers": 1,
            "address": "tcp://127.0.0.1:0",
            "address_queue": addresses,
            "config_data": env_config_data(env_config(work)),
        },
        daemon=True,
    )
    process.start()
    try:
        yield addresses.get(True, 300), work
    finally:
        process.terminate()
        process.join(30)


@pytest.fixture
async def client(served: tuple[str, Path]) -> AsyncIterator[EnvClient]:
    client = EnvClient(served[0])
    await client.wait_for_server_startup(timeout=300)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def served_work(served: tuple[str, Path]) -> Path:
    return served[1]
