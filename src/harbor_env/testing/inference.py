"""A fake inference server that speaks what verifiers' clients need, playing a scripted policy.

- `GET /v1/models`: the served model and the LoRA adapters loaded so far, with the context length.
- `POST /inference/v1/generate`: token ids in, token ids + logprobs out, and the `usage` block
  (vLLM's token API as prime-rl's inference server serves it); the train client uses it. A
  request naming a model that is neither the served one nor a loaded adapter gets vLLM's 404.
- `POST /v1/chat/completions`: OpenAI chat, for evaluation clients and plain agents.
- What prime-rl's orchestrator calls on its inference server (admin endpoints, recorded in
  `admin_calls`): `GET /health`, `POST /load_lora_adapter` (LoRA runs load each new policy
  version's adapter by name), `POST /pause`, `/update_weights`, `/resume` (full-weight runs),
  `GET /metrics` (vLLM's Prometheus gauges the orchestrator polls).

The policy is a function of the prompt text, so concurrent episodes need no server-side state.
Every generate request is recorded (session, model, prompt ids, completion ids, logprobs) so
tests can compare what the trainer receives with what the "model" produced. Faults can be
switched on to exercise the failure paths (HTTP 500, garbage bodies, dropped connections,
hangs): for every request (`fault`) or for the generate requests a function picks
(`fault_for`, e.g. one session's second turn).
"""

from __future__ import annotations

import asyncio
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from aiohttp import web
from tokenizers import Tokenizer

from harbor_env.testing.tokenizer import EOS

Fault = Literal["http_500", "garbage", "drop", "hang"]


@dataclass(frozen=True)
class PolicyInput:
    prompt: str  # the rendered prompt text (ChatML)
    session_id: str  # verifiers' trace id (X-Session-ID); "" for chat requests
    turn: int  # how many assistant replies the prompt already holds


Policy = Callable[[PolicyInput], str]
FaultChooser = Callable[[PolicyInput], "Fault | None"]


@dataclass
class GenerateRecord:
    session_id: str
    model: str  # the model the request named (a LoRA adapter's name in LoRA runs)
    prompt_ids: list[int]
    completion_ids: list[int]
    logprobs: list[float]
    finish_reason: str


@dataclass
class AdminCall:
    path: str
    query: dict[str, str]
    body: dict | None


@dataclass
class FakeInferenceServer:
    """Start with :meth:`start` (a background thread with its own event loop); always :meth:`stop`."""

    tokenizer_dir: Path
    policy: Policy
    model: str = "test-model"
    max_model_len: int = 131072
    fault: Fault | None = None
    fault_for: FaultChooser | None = None
    records: list[GenerateRecord] = field(default_factory=list)
    faulted: list[tuple[PolicyInput, Fault]] = field(default_factory=list)  # requests fault_for picked
    admin_calls: list[AdminCall] = field(default_factory=list)
    lora_adapters: dict[str, str] = field(default_factory=dict)  # loaded adapters: name -> path
    chat_requests: list[dict] = field(default_factory=list)
    api_keys_seen: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._tokenizer = Tokenizer.from_file(str(Path(self.tokenizer_dir) / "tokenizer.json"))
        self._eos = self._tokenizer.token_to_id(EOS)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """OpenAI-style base URL (with /v1), as verifiers' client configs expect."""
        return f"http://127.0.0.1:{self.port}/v1"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeInferenceServer:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._start_app())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="fake-inference", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("fake inference server did not start")
        return self

    async def _start_app(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/inference/v1/generate", self._generate)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        for path in ("/load_lora_adapter", "/v1/load_lora_adapter"):
            app.router.add_post(path, self._load_lora_adapter)
        for path in ("/pause", "/resume", "/update_weights"):
            app.router.add_post(path, self._weights_admin)
        self._released = asyncio.Event()  # ends hung requests (the "hang" fault) at stop
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._released.set)
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)  # type: ignore[union-attr]
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)  # type: ignore[union-attr]
        self._loop.close()
        self._loop = None

    def __enter__(self) -> FakeInferenceServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ helpers

    def completions_of(self, session_id: str) -> list[GenerateRecord]:
        with self._lock:
            return [r for r in self.records if r.session_id == session_id]

    def _logprobs(self, session_id: str, turn: int, count: int) -> list[float]:
        # Deterministic, distinct-looking values: tests compare them exactly.
        return [-((zlib.crc32(f"{session_id}:{turn}:{i}".encode()) % 5000) + 1) / 1000 for i in range(count)]

    def _note_key(self, request: web.Request) -> None:
        auth = request.headers.get("Authorization", "")
        with self._lock:
            self.api_keys_seen.add(auth.removeprefix("Bearer ").strip())

    def _record_admin(self, request: web.Request, body: dict | None = None) -> None:
        with self._lock:
            self.admin_calls.append(AdminCall(request.path, dict(request.query), body))

    async def _accept(self, request: web.Request) -> tuple[dict, web.StreamResponse | None]:
        """The request's body, and the injected fault's response if a fault is on."""
        self._note_key(request)
        body = await request.json()
        return body, await self._maybe_fault(request, self.fault)

    async def _maybe_fault(self, request: web.Request, fault: Fault | None) -> web.StreamResponse | None:
        if fault == "http_500":
            return web.json_response({"error": "injected failure"}, status=500)
        if fault == "garbage":
            return web.Response(text="<html>not json</html>", content_type="text/html")
        if fault == "drop":
            request.transport.close()  # type: ignore[union-attr]
            raise ConnectionResetError("injected drop")
        if fault == "hang":
            await self._released.wait()  # until the server stops
            return web.json_response({"error": "server stopped"}, status=503)
        return None

    # ------------------------------------------------------------------ routes

    async def _models(self, request: web.Request) -> web.Response:
        self._note_key(request)
        with self._lock:
            served = [self.model, *self.lora_adapters]
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": name, "object": "model", "max_model_len": self.max_model_len} for name in served],
            }
        )

    async def _health(self, request: web.Request) -> web.Response:
        self._record_admin(request)
        return web.Response(text="")

    async def _metrics(self, request: web.Request) -> web.Response:
        # The gauges prime-rl's orchestrator reads (its concurrency controller); an idle engine.
        self._record_admin(request)
        return web.Response(
            text="vllm:kv_cache_usage_perc 0.0\nvllm:num_requests_running 0.0\nvllm:num_requests_waiting 0.0\n"
            f'vllm:cache_config_info{{kv_cache_size_tokens="{self.max_model_len}"}} 1.0\n'
            "vllm:num_preemptions_total 0.0\n",
            content_type="text/plain",
        )

    async def _load_lora_adapter(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._record_admin(request, body)
        name, path = body.get("lora_name"), body.get("lora_path")
        if not name or not path:
            return web.json_response({"error": "lora_name and lora_path are required"}, status=400)
        with self._lock:
            self.lora_adapters[name] = path  # a new version under the same name replaces the old
        return web.Response(text=f"Success: LoRA adapter '{name}' added successfully.")

    async def _weights_admin(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        self._record_admin(request, body)
        return web.json_response({"status": "ok"})

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        body, faulted = await self._accept(request)
        if faulted is not None:
            return faulted
        model = body.get("model", self.model)
        with self._lock:
            known = model == self.model or model in self.lora_adapters
        if not known:  # as vLLM answers a model it does not serve
            return web.json_response(
                {"error": {"message": f"The model `{model}` does not exist.", "code": 404}}, status=404
            )
        prompt_ids = list(body["token_ids"])
        prompt = self._tokenizer.decode(prompt_ids, skip_special_tokens=False)
        session_id = request.headers.get("X-Session-ID", "")
        turn = max(prompt.count("<|im_start|>assistant") - 1, 0)
        request_input = PolicyInput(prompt=prompt, session_id=session_id, turn=turn)
        fault = self.fault_for(request_input) if self.fault_for is not None else None
        if fault is not None:
            with self._lock:
                self.faulted.append((request_input, fault))
            return await self._maybe_fault(request, fault)  # type: ignore[return-value]
        reply = self.policy(request_input)
        completion_ids = self._tokenizer.encode(reply, add_special_tokens=False).ids + [self._eos]
        max_tokens = body.get("sampling_params", {}).get("max_tokens")
        finish_reason = "stop"
        if max_tokens is not None and len(completion_ids) > max_tokens:
            completion_ids, finish_reason = completion_ids[:max_tokens], "length"
        logprobs = self._logprobs(session_id, turn, len(completion_ids))
        with self._lock:
            self.records.append(GenerateRecord(session_id, model, prompt_ids, completion_ids, logprobs, finish_reason))
        reply = {
            "request_id": f"gen-{len(self.records)}",
            "choices": [
                {
                    "index": 0,
                    "token_ids": completion_ids,
                    "logprobs": {
                        "content": [
                            {"token": f"token_id:{t}", "logprob": lp}
                            for t, lp in zip(completion_ids, logprobs, strict=False)
                        ]
                    },
                    "finish_reason": finish_reason,
                }
            ],
            "prompt_logprobs": None,
            "kv_transfer_params": None,
            "usage": {
                "prompt_tokens": len(prompt_ids),
                "completion_tokens": len(completion_ids),
                "total_tokens": len(prompt_ids) + len(completion_ids),
            },
        }
        if body.get("return_token_ids"):
            # vLLM echoes the prompt only when asked (multimodal prompts it expanded itself).
            reply["prompt_token_ids"] = prompt_ids
        return web.json_response(reply)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, faulted = await self._accept(request)
        if faulted is not None:
            return faulted
        with self._lock:
            self.chat_requests.append(body)
        messages = body.get("messages", [])
        prompt = "".join(f"<|im_start|>{m['role']}\n{_text(m.get('content'))}<|im_end|>\n" for m in messages)
        turn = sum(1 for m in messages if m["role"] == "assistant")
        reply = self.policy(PolicyInput(prompt=prompt + "<|im_start|>assistant\n", session_id="", turn=turn))
        prompt_tokens = len(self._tokenizer.encode(prompt).ids)
        completion_tokens = len(self._tokenizer.encode(reply).ids) + 1
        return web.json_response(
            {
                "id": f"chat-{len(self.chat_requests)}",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", self.model),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )


def _text(content: object) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


__all__ = ["AdminCall", "FakeInferenceServer", "GenerateRecord", "Policy", "PolicyInput"]
