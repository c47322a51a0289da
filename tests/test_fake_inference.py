"""The fake inference server answers what prime-rl's orchestrator asks of its vLLM server: health,
models with the loaded LoRA adapters, adapter loads by name, weight-update calls, metrics; it
refuses a model it does not serve, and injects a fault into the one request a chooser picks."""

from __future__ import annotations

from pathlib import Path

import httpx
from tokenizers import Tokenizer

from harbor_env.testing.inference import FakeInferenceServer, PolicyInput
from harbor_env.testing.policies import RotatingPolicy, ScriptedPolicy, terminus_reply


def prompt_ids(tokenizer: Path, turns: int = 0) -> list[int]:
    """A ChatML prompt holding `turns` earlier assistant replies, as token ids."""
    chat = "<|im_start|>user\nhi<|im_end|>\n" + "<|im_start|>assistant\nok<|im_end|>\n" * turns
    return Tokenizer.from_file(str(tokenizer / "tokenizer.json")).encode(chat + "<|im_start|>assistant\n").ids


def test_admin_endpoints_and_lora_adapters(tokenizer: Path) -> None:
    policy = ScriptedPolicy({}, default=[terminus_reply("ls\n")])
    with FakeInferenceServer(tokenizer, policy, model="base") as server:
        client = httpx.Client(base_url=f"http://127.0.0.1:{server.port}")
        request = {"model": "r16-a32", "token_ids": prompt_ids(tokenizer), "sampling_params": {"max_tokens": 64}}

        assert client.get("/health").status_code == 200
        assert client.post("/inference/v1/generate", json=request).status_code == 404  # not loaded yet
        assert (
            client.post("/load_lora_adapter", json={"lora_name": "r16-a32", "lora_path": "/w/step_0"}).status_code
            == 200
        )
        assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["base", "r16-a32"]
        reply = client.post("/inference/v1/generate", json=request)
        assert reply.status_code == 200 and server.records[-1].model == "r16-a32"
        assert client.post("/pause", params={"mode": "keep"}).status_code == 200
        assert client.post("/update_weights", json={"weight_dir": "/w/step_1"}).status_code == 200
        assert client.post("/resume").status_code == 200
        assert "vllm:num_requests_running" in client.get("/metrics").text
        assert client.post("/load_lora_adapter", json={"lora_name": "r16-a32"}).status_code == 400
        assert [(c.path, c.body) for c in server.admin_calls if c.path != "/health" and c.path != "/metrics"] == [
            ("/load_lora_adapter", {"lora_name": "r16-a32", "lora_path": "/w/step_0"}),
            ("/pause", None),
            ("/update_weights", {"weight_dir": "/w/step_1"}),
            ("/resume", None),
            ("/load_lora_adapter", {"lora_name": "r16-a32"}),
        ]
        assert next(c.query for c in server.admin_calls if c.path == "/pause") == {"mode": "keep"}


def test_a_fault_hits_only_the_request_the_chooser_picks(tokenizer: Path) -> None:
    policy = RotatingPolicy(
        {"solve": ScriptedPolicy({}, default=["solve"]), "fail": ScriptedPolicy({}, default=["fail"])}
    )

    def second_session_second_turn(request: PolicyInput) -> str | None:
        return "http_500" if request.turn == 1 and policy.index_of(request.session_id) == 1 else None

    with FakeInferenceServer(tokenizer, policy, fault_for=second_session_second_turn) as server:
        client = httpx.Client(base_url=f"http://127.0.0.1:{server.port}")

        def call(session: str, turns: int) -> int:
            body = {"model": "test-model", "token_ids": prompt_ids(tokenizer, turns), "sampling_params": {}}
            return client.post("/inference/v1/generate", json=body, headers={"X-Session-ID": session}).status_code

        assert [call("a", 0), call("b", 0), call("a", 1), call("b", 1), call("c", 0)] == [200, 200, 200, 500, 200]
        assert policy.assigned == {"a": "solve", "b": "fail", "c": "solve"}
        assert [(r.session_id, r.turn) for r, _ in server.faulted] == [("b", 1)]
        decode = Tokenizer.from_file(str(tokenizer / "tokenizer.json")).decode
        assert [decode(r.completion_ids[:-1]) for r in server.records] == ["solve", "fail", "solve", "solve"]
