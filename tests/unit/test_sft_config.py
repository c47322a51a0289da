"""The prime-rl `sft` config of docs/data.md renders chats as the RL configs do."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest
from pydantic import TypeAdapter

ROOT = Path(__file__).resolve().parents[2]


def readme_sft_config() -> dict:
    """The TOML block after `uv run sft @ sft.toml` in docs/data.md."""
    data = (ROOT / "docs" / "data.md").read_text()
    after = data[data.index("`uv run sft @ sft.toml`") :]
    return tomllib.loads(re.search(r"```toml\n(.*?)```", after, re.DOTALL)[1])


def rl_renderers() -> dict[str, dict]:
    configs = {p.name: tomllib.loads(p.read_text()) for p in sorted((ROOT / "configs").glob("*.toml"))}
    return {
        name: c["orchestrator"]["renderer"] for name, c in configs.items() if "renderer" in c.get("orchestrator", {})
    }


def test_the_sft_renderer_is_the_rl_renderer() -> None:
    sft = readme_sft_config()
    rl = rl_renderers()
    assert rl, "no RL config sets [orchestrator.renderer]"
    for name, renderer in rl.items():
        assert sft["renderer"] == renderer, name
        assert sft["model"]["name"] == tomllib.loads((ROOT / "configs" / name).read_text())["model"]["name"], name
    # The type prime-rl's SFTConfig.renderer has (renderers' discriminated union).
    renderers = pytest.importorskip("renderers")
    renderer = TypeAdapter(renderers.RendererConfig).validate_python(sft["renderer"])
    assert renderer.name == "qwen3" and renderer.enable_thinking is False


@pytest.mark.prime_rl  # run by scripts/test-prime-rl.sh, in prime-rl's own environment
@pytest.mark.skipif(
    importlib.util.find_spec("prime_rl") is None, reason="needs prime-rl's environment: bash scripts/test-prime-rl.sh"
)
def test_prime_rls_own_sft_config_class_takes_it() -> None:
    from prime_rl.configs.sft import SFTConfig

    config = SFTConfig.model_validate(readme_sft_config())
    assert config.renderer.name == "qwen3" and config.renderer.enable_thinking is False
