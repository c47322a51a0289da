"""The agent's model calls inside a rollout (harbor_env.interception_llm): what goes on the wire,
and what each kind of reply becomes for Terminus-2, through the real interception where the
outcome depends on it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import verifiers.v1 as vf
from aiohttp import web

from harbor_env.errors import ContextExhausted, ModelCallFailed, RolloutStopped
from harbor_env.interception_llm import InterceptionLLM
from harbor_env.testing.configs import env_config
from harbor_env.testing.episodes import run_in_process
from harbor_env.testing.inference import FakeInferenceServer
from harbor_env.testing.policies import ScriptedPolicy, run_script, script_then_finish, terminus_reply
from harbor_env.testing.tasks import MARKER, SOLVE, TASK

CUT_REPLY_WARNING = "ERROR!! NONE of the actions you just requested were performed"


async def test_requests_carry_the_agents_options_and_usage_comes_back(tokenizer: Path) -> None:
    policy = ScriptedPolicy({}, default=[terminus_reply("ls\n")])
    with FakeInferenceServer(tokenizer, policy) as server:
        llm = InterceptionLLM(
            model_name="openai/test-model",
            base_url=server.base_url,
            api_key="sk-rollout-secret",
            temperature=0.7,
            session_id="trial-1",
            llm_kwargs={"max_tokens": 512, "extra_body": {"top_k": 20}, "timeout": 3, "api_key": "ignored"},
        )
        try:
            history = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "reply"}]
            response = await llm.call("second", message_history=history, extra_body={"min_p": 0.1})
        finally:
            await llm.aclose()
        (request,) = server.chat_requests
    assert request["model"] == "test-model"  # the LiteLLM route prefix is not the model's name
    assert request["messages"] == [*history, {"role": "user", "content": "second"}]
    assert (request["temperature"], request["max_tokens"], request["top_k"], request["min_p"]) == (0.7, 512, 20, 0.1)
    assert request["session_id"] == "trial-1"
    assert not {"timeout", "api_key", "extra_body"} & set(request)  # transport options stay off the wire
    assert server.api_keys_seen == {"sk-rollout-secret"}
    assert "sk-rollout-secret" not in repr(llm)
    assert response.content == terminus_reply("ls\n")
    assert response.usage is not None and response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0


async def test_the_fake_model_answers_the_token_api_as_prime_rls_vllm(tokenizer: Path) -> None:
    """Usage comes back; the prompt's ids only when asked (`return_token_ids`), as vLLM's
    /inference/v1/generate does: a fake that echoes every prompt costs what a real one does not."""
    with FakeInferenceServer(tokenizer, ScriptedPolicy({}, default=[terminus_reply("ls\n")])) as server:
        url = server.base_url.removesuffix("/v1") + "/inference/v1/generate"
        request = {"model": "test-model", "token_ids": [5, 6, 7], "sampling_params": {"max_tokens": 8}}
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json=request) as reply:
                plain = await reply.json()
            async with session.post(url, json={**request, "return_token_ids": True}) as reply:
                asked = await reply.json()
    (choice,) = plain["choices"]
    assert "prompt_token_ids" not in plain and asked["prompt_token_ids"] == [5, 6, 7]
    assert choice["finish_reason"] == "length" and len(choice["token_ids"]) == 8
    assert [entry["token"] for entry in choice["logprobs"]["content"]] == [f"token_id:{t}" for t in choice["token_ids"]]
    assert plain["usage"] == {"prompt_tokens": 3, "completion_tokens": 8, "total_tokens": 11}


@pytest.mark.parametrize(
    ("status", "body", "raised"),
    [
        (400, {"error": {"message": "rollout stopped: max_turns"}}, RolloutStopped),
        (
            400,
            {"error": {"message": "Prompt length (900) exceeds maximum context length (512)."}},
            ContextExhausted,
        ),
        (400, {"error": {"message": "rollout stopped: context_length"}}, ContextExhausted),  # verifiers 0.3
        (400, {"error": {"message": "temperature must be positive"}}, ModelCallFailed),
        (502, {"error": "upstream down"}, ModelCallFailed),
        (200, {"choices": []}, ModelCallFailed),
    ],
)
async def test_error_replies_become_the_agents_outcomes(status: int, body: dict, raised: type[BaseException]) -> None:
    async with answering(web.json_response(body, status=status)) as llm:
        with pytest.raises(raised) as caught:
            await llm.call("hello")
    assert caught.type is raised  # ContextExhausted is a RolloutStopped: no mix-up either way


@pytest.mark.parametrize(
    ("status", "body", "says"),
    [
        # An inference server's 200 with a body that is not JSON, as verifiers' interception relays
        # it: HTTP 502 with the train client's (json) or the eval client's (pydantic) parser error.
        (
            502,
            '{"error": {"message": "Expecting value: line 1 column 1 (char 0)"}}',
            "the inference server's reply could not be read: not an error status, but a body that is not a "
            "chat completion (Expecting value: line 1 column 1 (char 0)); verifiers' interception answered "
            "HTTP 502 for it",
        ),
        (
            502,
            '{"error": {"message": "malformed upstream response: ValueError: expected value at line 1 column 1"}}',
            "the inference server's reply could not be read: not an error status, but a body that is not a "
            "chat completion (malformed upstream response: ValueError: expected value at line 1 column 1)",
        ),
        # A 502 of the server itself stays one; a 200 that is not JSON says its status and body.
        (502, '{"error": "upstream down"}', "model endpoint answered HTTP 502: upstream down"),
        (
            200,
            "<html>Bad Gateway</html>",
            "model endpoint answered HTTP 200 with a body that is not a chat completion "
            "(JSONDecodeError: Expecting value: line 1 column 1 (char 0)): '<html>Bad Gateway</html>'",
        ),
    ],
)
async def test_failed_calls_say_what_the_server_answered(status: int, body: str, says: str) -> None:
    async with answering(web.Response(text=body, status=status, content_type="text/html")) as llm:
        with pytest.raises(ModelCallFailed) as caught:
            await llm.call("hello")
    assert says in str(caught.value)


@contextlib.asynccontextmanager
async def answering(response: web.Response) -> AsyncIterator[InterceptionLLM]:
    """An InterceptionLLM whose endpoint answers every chat completion with `response`."""

    async def reply(_request: web.Request) -> web.Response:
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", reply)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    llm = InterceptionLLM(model_name="openai/m", base_url=f"http://127.0.0.1:{port}/v1", api_key="k", timeout_sec=10)
    try:
        yield llm
    finally:
        await llm.aclose()
        await runner.cleanup()


async def test_a_reply_cut_at_max_tokens_is_the_agents_problem(work: Path, tokenizer: Path) -> None:
    """finish_reason "length": Terminus-2 says the reply was cut and asks again; the episode goes on
    and is scored."""
    rambling = terminus_reply("echo " + "and so on " * 400 + "\n")
    policy = ScriptedPolicy({MARKER: [rambling, *script_then_finish(run_script(SOLVE), duration=3)]})
    with FakeInferenceServer(tokenizer, policy) as server:
        episode = await run_in_process(
            env_config(work, include=[TASK], keep_trials=True),
            server,
            tokenizer,
            vf.SamplingConfig(temperature=1.0, max_tokens=800),
        )
        (trace,) = episode.traces
        calls = server.completions_of(trace.id)
        second_prompt = tokenizer_decode(tokenizer, calls[1].prompt_ids)
    assert trace.ok, trace.errors
    assert trace.reward == 1.0
    assert [c.finish_reason for c in calls][:2] == ["length", "stop"]
    assert CUT_REPLY_WARNING in second_prompt


def tokenizer_decode(tokenizer: Path, ids: list[int]) -> str:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tokenizer / "tokenizer.json")).decode(ids, skip_special_tokens=False)
