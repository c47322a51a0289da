"""A verifiers env server in a spawned process of its own (prime-rl's path), and its client.

The server runs one in-process `EnvServer` (`max_workers=1`), so its process is where episodes
run: its PID is what CPU and memory readings (and bench/profiles.py's py-spy samples) measure.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from verifiers.v1.serve import EnvClient, env_config_data, serve_env

STARTUP_TIMEOUT_S = 300  # importing verifiers, Harbor and the renderer takes ~30 s on a busy machine


@contextlib.contextmanager
def env_server_process(config: Any) -> Iterator[tuple[multiprocessing.process.BaseProcess, str]]:
    """The server process and its address; stopped (SIGTERM) on exit."""
    context = multiprocessing.get_context("spawn")
    addresses = context.Queue()
    process = context.Process(
        target=serve_env,
        kwargs={
            "max_workers": 1,
            "address": "tcp://127.0.0.1:0",
            "address_queue": addresses,
            "config_data": env_config_data(config),
        },
        daemon=True,
    )
    process.start()
    try:
        yield process, addresses.get(True, STARTUP_TIMEOUT_S)
    finally:
        process.terminate()
        process.join(30)


@dataclass
class EnvServer:
    """A verifiers env server in a spawned process, and a client connected to it."""

    process: multiprocessing.process.BaseProcess
    client: EnvClient

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid


@contextlib.asynccontextmanager
async def connected(address: str) -> AsyncIterator[EnvClient]:
    """A client of the env server at `address`, once the server answers."""
    client = EnvClient(address)
    try:
        await client.wait_for_server_startup(timeout=STARTUP_TIMEOUT_S)
        yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def env_server(config: Any) -> AsyncIterator[EnvServer]:
    """An env server for `config` and a client of it, for the length of the block."""
    with contextlib.ExitStack() as stack:
        process, address = await asyncio.to_thread(stack.enter_context, env_server_process(config))
        async with connected(address) as client:
            yield EnvServer(process, client)
