"""A verifiers env server in a spawned process of its own (prime-rl's path), and its client.

The server runs one in-process `EnvServer` (`max_workers=1`), so its process is where episodes
run: its PID is what CPU and memory readings measure. With `profile_to`, the server runs under
cProfile, and writes the stats of the window `profiled(...)` spans there (bench/overhead.py
attributes its CPU by owner).
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import marshal
import multiprocessing
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from verifiers.v1.serve import EnvClient, env_config_data, serve_env

STARTUP_TIMEOUT_S = 300  # importing verifiers, Harbor and the renderer takes ~30 s on a busy machine


PROFILE_START, PROFILE_STOP = signal.SIGUSR1, signal.SIGUSR2


def _serve(profile_to: str | None, **kwargs: Any) -> None:
    if profile_to is not None:
        # On from the start, so that every frame's entry is seen (a profiler enabled in the middle
        # of running coroutines books time wrongly, even negative); the window between the two
        # signals is the difference of two snapshots. CPU time of the event loop's thread: a
        # wall clock would count the loop's idle waits.
        profiler = cProfile.Profile(time.thread_time)
        start: dict[Any, tuple] = {}

        def snapshot() -> dict[Any, tuple]:
            profiler.snapshot_stats()
            return dict(profiler.stats)  # type: ignore[attr-defined]

        def begin(*_: Any) -> None:
            start.clear()
            start.update(snapshot())

        def end(*_: Any) -> None:
            window = {}
            for function, (calls, primitive, own, cumulative, _) in snapshot().items():
                c0, p0, own0, cumulative0, _ = start.get(function, (0, 0, 0.0, 0.0, {}))
                window[function] = (calls - c0, primitive - p0, own - own0, cumulative - cumulative0, {})
            Path(profile_to).write_bytes(marshal.dumps(window))  # pstats' file format

        signal.signal(PROFILE_START, begin)
        signal.signal(PROFILE_STOP, end)
        profiler.enable()
    serve_env(**kwargs)


@contextlib.contextmanager
def env_server_process(
    config: Any, profile_to: Path | None = None
) -> Iterator[tuple[multiprocessing.process.BaseProcess, str]]:
    """The server process and its address; stopped (SIGTERM) on exit."""
    context = multiprocessing.get_context("spawn")
    addresses = context.Queue()
    process = context.Process(
        target=_serve,
        args=(str(profile_to) if profile_to else None,),
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
async def env_server(config: Any, profile_to: Path | None = None) -> AsyncIterator[EnvServer]:
    """An env server for `config` and a client of it, for the length of the block."""
    with contextlib.ExitStack() as stack:
        process, address = await asyncio.to_thread(stack.enter_context, env_server_process(config, profile_to))
        async with connected(address) as client:
            yield EnvServer(process, client)


@contextlib.asynccontextmanager
async def profiled(server: EnvServer, profile_to: Path) -> AsyncIterator[None]:
    """Profile the server (started with `profile_to`) for the length of the block; the stats
    are in `profile_to` after it."""
    os.kill(server.pid, PROFILE_START)
    try:
        yield
    finally:
        os.kill(server.pid, PROFILE_STOP)
        for _ in range(1200):  # a large profile takes a while to write on a busy machine
            if profile_to.is_file():
                break
            await asyncio.sleep(0.1)
