"""The trainer's side of prime-rl's protocol, with no model: receives each step's micro-batches
with prime-rl's own receiver and publishes a new policy version per step, as the real trainer
does (filesystem rollout transport and weight broadcast, LoRA).

Protocol (prime-rl 559b4477): the orchestrator waits for `broadcasts/step_0/STABLE` at start
and ships batch k (`rollouts/step_k/rank_0.bin`) only once the trainer has published a recent
enough version; the trainer publishes v_k (`broadcasts/step_k/`, then its `STABLE` marker)
after training on batch k, for every step but the last. With LoRA the orchestrator then asks
its inference server to load the adapter folder `broadcasts/step_k` under the adapter's name.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any


class StubTrainer:
    def __init__(self, run_dir: Path, max_steps: int, lora_rank: int, lora_alpha: float) -> None:
        self.run_dir = run_dir
        self.max_steps = max_steps
        self.lora = {"r": lora_rank, "lora_alpha": lora_alpha, "peft_type": "LORA"}
        self.batches: dict[int, list[Any]] = {}  # step -> prime-rl MicroBatch list (rank 0)
        self.published: list[int] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stub-trainer", daemon=True)

    def start(self) -> StubTrainer:
        self.publish(0)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def publish(self, version: int) -> None:
        folder = self.run_dir / "broadcasts" / f"step_{version}"
        folder.mkdir(parents=True, exist_ok=True)
        # What a LoRA broadcast folder holds besides the weights: the adapter's config.
        (folder / "adapter_config.json").write_text(json.dumps(self.lora))
        (folder / "STABLE").touch()
        self.published.append(version)

    def _run(self) -> None:
        from prime_rl.transports.rollouts import FileSystemMicroBatchReceiver

        try:
            receiver = FileSystemMicroBatchReceiver(self.run_dir, data_rank=0, current_step=1)
            for step in range(1, self.max_steps + 1):
                while not receiver.can_receive():
                    if self._stop.wait(0.2):
                        return
                self.batches[step] = receiver.receive()
                if step < self.max_steps:
                    self.publish(step)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error
