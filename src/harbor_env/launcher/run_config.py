"""A prime-rl run config (TOML, `rl @ file.toml`) as this project reads it before launching.

prime-rl validates the whole file itself; this module reads only what the launcher must know
first (model, LoRA, GPUs, the HarborEnvironment sources) and applies command-line overrides
(`--a.b value`) the way prime-rl will, so the checks see the run that will start.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harbor_env.errors import ConfigError

HARBOR_ENV_ID = "harbor-env"


@dataclass(frozen=True)
class Source:
    """One `[[orchestrator.<kind>.source]]` entry."""

    kind: str  # "train" | "eval"
    name: str
    env: dict[str, Any]

    @property
    def key(self) -> str:
        return f"orchestrator.{self.kind}.source[{self.name}].env"

    @property
    def is_harbor(self) -> bool:
        return self.env.get("taskset", {}).get("id") == HARBOR_ENV_ID


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare string


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `--a.b-c value` / `--a.b=value` / `--flag` overrides to a config dict (in place)."""
    i = 0
    while i < len(overrides):
        token = overrides[i]
        if not token.startswith("--"):
            raise ConfigError(f"override {token!r}: expected --key.path value")
        key, sep, value = token[2:].partition("=")
        if not sep:
            if i + 1 < len(overrides) and not overrides[i + 1].startswith("--"):
                value, i = overrides[i + 1], i + 1
            else:
                value = "true"
        node = data
        *parents, leaf = [part.replace("-", "_") for part in key.split(".")]
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override --{key}: {part} is not a table")
            node = child
        node[leaf] = _parse_value(value)
        i += 1
    return data


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`rl @ a.toml @ b.toml`: b's tables merge into a's, b's other values (lists too) replace a's."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


@dataclass
class RunConfig:
    paths: list[Path]
    data: dict[str, Any]

    @classmethod
    def load(cls, paths: Path | list[Path], overrides: list[str] | None = None) -> RunConfig:
        paths = [paths] if isinstance(paths, Path) else list(paths)
        data: dict[str, Any] = {}
        for path in paths:
            if not path.is_file():
                raise ConfigError(f"config file {path} not found")
            try:
                merge(data, tomllib.loads(path.read_text()))
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        return cls([p.resolve() for p in paths], apply_overrides(data, list(overrides or [])))

    @property
    def path(self) -> Path:
        """The last config file: the one whose name a run's outputs and messages carry."""
        return self.paths[-1]

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    @property
    def model(self) -> str:
        return self.get("model.name", "Qwen/Qwen3-0.6B")

    @property
    def lora(self) -> tuple[int, float] | None:
        lora = self.get("trainer.model.lora")
        if lora is None:
            return None
        rank = lora.get("rank", 16)
        return rank, lora.get("alpha", 2 * rank)

    @property
    def gpus(self) -> tuple[int, int]:
        """(trainer GPUs, inference GPUs) on one node; multi-node runs count per node."""
        deployment = self.get("deployment", {}) or {}
        if deployment.get("type", "single_node") != "single_node":
            return deployment.get("gpus_per_node", 8), 0
        return deployment.get("num_train_gpus", 1), deployment.get("num_infer_gpus", 1)

    def sources(self) -> list[Source]:
        found = []
        for kind in ("train", "eval"):
            entries = self.get(f"orchestrator.{kind}.source", []) or []
            if isinstance(entries, dict):
                entries = [entries]
            for index, entry in enumerate(entries):
                found.append(Source(kind, entry.get("name", f"{kind}-{index}"), entry.get("env", {}) or {}))
        return found

    def harbor_sources(self) -> list[Source]:
        sources = [s for s in self.sources() if s.is_harbor]
        if not sources:
            raise ConfigError(
                f"{' @ '.join(map(str, self.paths))}: no [[orchestrator.train.source]] uses the HarborEnvironment "
                f"(env.taskset.id = {HARBOR_ENV_ID!r})"
            )
        return sources
