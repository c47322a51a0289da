"""A small ChatML tokenizer built offline, for tests and benchmarks (nothing is downloaded).

Byte-level BPE: every string round-trips exactly, which the train client relies on when it
parses completion token ids back into text. Trained on Terminus-2's own prompt templates so
that prompts stay a few thousand tokens long.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

EOS = "<|im_end|>"
# Qwen3's special tokens, so that tests and benchmarks render with the renderer the configs
# train with (`train_client_config`), not the generic one that re-renders every turn in full.
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    EOS,
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def train_client_config(base_url: str, tokenizer_dir: Path, api_key_var: str = "NONE") -> Any:
    """verifiers' train client on the fake model with the test tokenizer, rendering with the
    renderer of configs/harbor_8b.toml (Qwen3's, thinking off): like training, it extends each
    turn's prompt from the last one instead of rendering it afresh."""
    import verifiers.v1 as vf
    from renderers import Qwen3RendererConfig

    return vf.TrainClientConfig(
        base_url=base_url,
        api_key_var=api_key_var,
        renderer_model_name=str(tokenizer_dir),
        renderer=Qwen3RendererConfig(enable_thinking=False),
    )


def _corpus() -> list[str]:
    import harbor.agents.terminus_2 as terminus

    templates = Path(terminus.__file__).parent / "templates"
    texts = [p.read_text() for p in sorted(templates.glob("*")) if p.is_file()]
    texts += [
        '{"analysis": "", "plan": "", "commands": [{"keystrokes": "ls -la\\n", "duration": 0.1}], '
        '"task_complete": false}',
        "root@sandbox:/app# cat > /tmp/run.sh <<'EOF'\npython3 -m unittest\nEOF\n",
    ]
    return texts * 20


def build_test_tokenizer(directory: Path, vocab_size: int = 2000) -> Path:
    """Write tokenizer.json and tokenizer_config.json (with a chat template) to `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer)
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": None,
                "eos_token": EOS,
                "pad_token": "<|endoftext|>",
                "model_max_length": 131072,
                "chat_template": CHAT_TEMPLATE,
            },
            indent=2,
        )
    )
    return directory


def build_test_model(directory: Path) -> Path:
    """A model folder as prime-rl loads one offline: the test tokenizer plus a tiny Qwen3
    `config.json` (the orchestrator reads the model's config; no weights are needed)."""
    build_test_tokenizer(directory)
    (directory / "config.json").write_text(
        json.dumps(
            {
                "model_type": "qwen3",
                "architectures": ["Qwen3ForCausalLM"],
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "num_key_value_heads": 2,
                "head_dim": 16,
                "vocab_size": 2048,
                "max_position_embeddings": 131072,
            },
            indent=2,
        )
    )
    return directory
