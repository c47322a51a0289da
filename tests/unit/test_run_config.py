"""run_config: the launcher's reading of a prime-rl config, with overrides applied as prime-rl applies them."""

from __future__ import annotations

from pathlib import Path

import pytest

from harbor_env.errors import ConfigError
from harbor_env.launcher.run_config import RunConfig, apply_overrides, merge

CONFIG = """
max_steps = 100

[model]
name = "Qwen/Qwen3-8B"

[trainer.model.lora]
rank = 32

[deployment]
num_train_gpus = 2
num_infer_gpus = 6

[[orchestrator.train.source]]
name = "harbor"
env.taskset.id = "harbor-env"
env.taskset.path = "datasets/harbor_tasks"

[[orchestrator.train.source]]
name = "math"
env.taskset.id = "gsm8k"

[orchestrator.eval.source]
env.taskset.id = "harbor-env"
"""


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["--a.b", "3"], {"a": {"b": 3}}),
        (["--a.b=3.5"], {"a": {"b": 3.5}}),
        (["--a.max-steps", "7"], {"a": {"max_steps": 7}}),
        (["--flag"], {"flag": True}),
        (["--flag", "--x", "false"], {"flag": True, "x": False}),
        (["--name", "Qwen/Qwen3-8B"], {"name": "Qwen/Qwen3-8B"}),
        (["--tags", '["a", "b"]'], {"tags": ["a", "b"]}),
        (["--name", '"quoted"'], {"name": "quoted"}),
    ],
)
def test_overrides_parse_as_prime_rl_parses_them(overrides: list[str], expected: dict) -> None:
    assert apply_overrides({}, overrides) == expected


def test_an_override_keeps_sibling_keys() -> None:
    assert apply_overrides({"a": {"b": 1, "c": 2}}, ["--a.b", "9"]) == {"a": {"b": 9, "c": 2}}


@pytest.mark.parametrize(
    ("data", "overrides", "message"),
    [
        ({}, ["a.b", "1"], "override 'a.b': expected --key.path value"),
        ({"a": 1}, ["--a.b", "1"], "override --a.b: a is not a table"),
    ],
)
def test_bad_overrides_name_themselves(data: dict, overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_overrides(data, overrides)


def test_later_files_merge_tables_and_replace_lists() -> None:
    base = {"a": {"x": 1, "y": 2}, "sources": [1, 2]}
    assert merge(base, {"a": {"y": 3}, "sources": [9]}) == {"a": {"x": 1, "y": 3}, "sources": [9]}


def test_the_launcher_reads_model_lora_gpus_and_harbor_sources(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text(CONFIG)
    run = RunConfig.load(path, ["--trainer.model.lora.alpha", "16"])
    assert run.model == "Qwen/Qwen3-8B"
    assert run.lora == (32, 16)
    assert run.gpus == (2, 6)
    assert [(s.kind, s.name) for s in run.sources()] == [("train", "harbor"), ("train", "math"), ("eval", "eval-0")]
    assert [s.key for s in run.harbor_sources()] == [
        "orchestrator.train.source[harbor].env",
        "orchestrator.eval.source[eval-0].env",
    ]


def test_several_files_merge_in_order(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(CONFIG)
    (tmp_path / "b.toml").write_text('[model]\nname = "other"\n')
    run = RunConfig.load([tmp_path / "a.toml", tmp_path / "b.toml"])
    assert run.model == "other" and run.get("max_steps") == 100 and run.path == (tmp_path / "b.toml").resolve()


def test_defaults_when_the_config_is_silent(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('[deployment]\ntype = "multi_node"\ngpus_per_node = 4\n')
    run = RunConfig.load(path)
    assert run.model == "Qwen/Qwen3-0.6B" and run.lora is None and run.gpus == (4, 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "config file .* not found"),
        ("a = [", "not valid TOML"),
        ('[[orchestrator.train.source]]\nenv.taskset.id = "gsm8k"\n', "no \\[\\[orchestrator.train.source\\]\\] uses"),
    ],
)
def test_bad_configs_name_the_file(tmp_path: Path, text: str | None, message: str) -> None:
    path = tmp_path / "run.toml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        RunConfig.load(path).harbor_sources()
    assert str(path) in str(caught.value)
