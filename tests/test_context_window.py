"""The model's context window (harbor_env.context_window): one rule at the limit on every stack,
and Terminus-2's summarization planned against the inference server's window, every call of a
summarizing episode reaching the trace exactly.

The episodes are real: Harbor Trials, Terminus-2, tmux, the local sandbox and verifiers'
interception with its train client (which refuses a prompt longer than the fake server's
`max_model_len`, as against prime-rl's vLLM). The same tests run on verifiers 0.3 (pinned), whose
interception stops such a rollout itself, and 0.4 (lock, newest), which relays an HTTP 400.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import verifiers.v1 as vf

from harbor_env.context_window import (
    MeasuredCall,
    context_window_of,
    count_chat_tokens,
    measure,
    served_context_window,
    summarize_plan,
)
from harbor_env.errors import ConfigError
from harbor_env.harness import HarborTrialHarness, HarborTrialHarnessConfig
from harbor_env.taskset import HarborTaskData
from harbor_env.testing.configs import env_config, task_data
from harbor_env.testing.episodes import run_in_process, train_client
from harbor_env.testing.inference import FakeInferenceServer, GenerateRecord
from harbor_env.testing.policies import ScriptedPolicy, run_script, terminus_reply
from harbor_env.testing.stepwise import solving_policy
from harbor_env.testing.tasks import LONG_TASKS, MARKER, SOLVE, TASK, write_task

SHORT_REPLIES = vf.SamplingConfig(temperature=1.0, max_tokens=512)
FLOOD = 'for i in $(seq 1 60); do echo "line $i of output that fills the model\'s context window"; done\n'


# ---------------------------------------------------------------------------- the rule at the limit


async def test_an_agent_that_floods_its_context_is_scored(work: Path, tokenizer: Path) -> None:
    """The agent solves the task, then floods its context: the next prompt does not fit. The
    episode ends there and the verifier scores it (1: the work was done), stopped as
    `context_length`, on every stack; the calls before the limit are trained."""
    policy = ScriptedPolicy({MARKER: [terminus_reply(run_script(SOLVE), duration=3), terminus_reply(FLOOD)]})
    with FakeInferenceServer(tokenizer, policy, max_model_len=5000) as server:
        (trace,) = (await run_in_process(env_config(work, include=[TASK]), server, tokenizer)).traces
        calls = server.completions_of(trace.id)
    assert trace.ok, trace.errors
    assert trace.reward == 1.0
    assert trace.stop_condition == "context_length"
    assert trace.metrics["harbor_context_exhausted"] == 1.0
    assert len(calls) == 2 and trace.num_turns == 2  # the third prompt never reached the model
    sampled = [t for b in trace.branches for t, m in zip(b.token_ids, b.sampled_mask, strict=True) if m]
    assert sampled == [t for c in calls for t in c.completion_ids]


async def test_an_agent_that_fails_then_floods_is_scored_zero(work: Path, tokenizer: Path) -> None:
    """Flooding is not a way out of a reward: the unsolved task scores 0 and the episode counts."""
    policy = ScriptedPolicy({MARKER: [terminus_reply(FLOOD), terminus_reply(FLOOD), terminus_reply(FLOOD)]})
    with FakeInferenceServer(tokenizer, policy, max_model_len=5000) as server:
        (trace,) = (await run_in_process(env_config(work, include=[TASK]), server, tokenizer)).traces
    assert trace.ok, trace.errors
    assert trace.reward == 0.0 and trace.stop_condition == "context_length"


async def test_a_first_prompt_over_the_window_is_errored(work: Path, tokenizer: Path) -> None:
    """The task's own prompt does not fit: nothing was sampled and nothing says anything about the
    agent, so the episode errors (prime-rl would drop a trace without turns anyway), naming the
    window, on every stack."""
    with FakeInferenceServer(tokenizer, ScriptedPolicy({}), max_model_len=300) as server:
        (trace,) = (await run_in_process(env_config(work, include=[TASK]), server, tokenizer)).traces
        assert server.records == []  # nothing reached the model
    assert not trace.ok and trace.rewards.get("reward") is None
    # verifiers 0.4 reports the train client's refusal it stashed ("Prompt length (N) exceeds maximum
    # context length (300)"), 0.3 the harness's error, which says the same in its words.
    message = trace.errors[-1].message
    assert "maximum context length (300)" in message or "first prompt does not fit the model's context" in message


async def test_a_failing_server_still_errors_the_episode(work: Path, tokenizer: Path) -> None:
    """Only the context limit became the agent's outcome: an HTTP 500 is not."""
    with FakeInferenceServer(tokenizer, ScriptedPolicy({}), max_model_len=5000, fault="http_500") as server:
        (trace,) = (await run_in_process(env_config(work, include=[TASK]), server, tokenizer)).traces
    assert not trace.ok and trace.rewards.get("reward") is None
    assert trace.stop_condition != "context_length"


async def test_a_verifier_failing_after_a_stop_is_errored(work: Path, tokenizer: Path) -> None:
    """An episode the interception stopped (here verifiers' turn limit; 0.3's context stop alike)
    whose verifier then fails is errored, not passed on as done without a reward: verifiers
    ignores a harness's error after a stop, so the harness records it on the trace itself."""
    write_task(work / "tasks", "silent", instruction="Silent verifier.", test_sh="#!/bin/bash\nexit 0\n")
    config = env_config(work, tasks=work / "tasks", include=["silent"], agent={"max_turns": 1})
    policy = ScriptedPolicy({}, default=[terminus_reply("ls\n")])
    with FakeInferenceServer(tokenizer, policy) as server:
        (trace,) = (await run_in_process(config, server, tokenizer)).traces
    assert trace.stop_condition == "max_turns"
    assert not trace.ok and trace.rewards.get("reward") is None
    assert "RewardFileNotFoundError" in trace.errors[-1].message  # raised at scoring, verifiers' last stage


# ---------------------------------------------------------------------------- the window's size


def test_the_window_is_read_from_the_model_card() -> None:
    cards = {"data": [{"id": "base", "max_model_len": 32768}, {"id": "r16-a32"}]}
    assert context_window_of(cards, "base") == 32768
    assert context_window_of(cards, "r16-a32") == 32768  # an adapter's card may omit it
    assert context_window_of({"data": [{"id": "a", "max_model_len": 8}, {"id": "b", "max_model_len": 9}]}, "c") is None
    assert context_window_of({"data": [{"id": "sglang-model"}]}, "sglang-model") is None
    assert context_window_of(None, "m") is None and context_window_of(["not", "a", "list"], "m") is None


async def test_summarization_plans_against_the_servers_window(tokenizer: Path) -> None:
    with FakeInferenceServer(tokenizer, ScriptedPolicy({}), max_model_len=20480) as server:
        client = train_client(server, tokenizer)
        context = vf.ModelContext(model="test-model", client=client, sampling=SHORT_REPLIES)
        summarizing = harness(agent={"summarize": True})
        plan = await summarizing.summarizing(context)
        assert (plan.window, plan.free_tokens) == (20480, 4096 + 4 * 512)
        configured = harness(agent={"summarize": True, "context_tokens": 16384})
        assert (await configured.summarizing(context)).window == 16384
        assert await harness().summarizing(context) is None
        kwargs = summarizing.trial_config(_task(), "test-model", plan).agent.kwargs
    assert kwargs["enable_summarize"] is True
    assert (kwargs["context_window"], kwargs["proactive_summarization_threshold"]) == (20480, 6144)
    assert await served_context_window("http://127.0.0.1:9/v1", "k", "m", {}) is None  # nothing listens


def test_bad_summarization_settings_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"agent\.summarize needs .* set agent\.context_tokens"):
        summarize_plan(None, "server", None, 512)
    with pytest.raises(ConfigError, match=r"agent\.summarize_below_free_tokens \(12288\) leaves less than half"):
        summarize_plan(16384, "agent.context_tokens", None, 2048)
    assert summarize_plan(32768, "agent.context_tokens", None, 2048).free_tokens == 12288


def harness(**config: object) -> HarborTrialHarness:
    return HarborTrialHarness(HarborTrialHarnessConfig(id="harbor-env", **config))


def _task() -> HarborTaskData:
    return HarborTaskData.model_validate(task_data())


# ---------------------------------------------------------------------------- the chat's size


def test_the_chat_is_counted_from_the_servers_usage() -> None:
    sent = [{"role": "user", "content": "x" * 400}]
    reply = "y" * 40
    measured = measure(sent, reply, prompt_tokens=100, completion_tokens=10)
    chat = [*sent, {"role": "assistant", "content": reply}]
    assert count_chat_tokens(chat, measured) == 110  # exactly the server's count
    grown = [*chat, {"role": "user", "content": "z" * 80}]
    assert count_chat_tokens(grown, measured) == 110 + 20  # + the new text at 4 chars a token
    rewritten = [{"role": "user", "content": "x" * 400}, {"role": "assistant", "content": "y" * 40}]
    assert count_chat_tokens(rewritten, measured) == 110  # not the same chat: estimated (here equal)
    assert count_chat_tokens(rewritten, MeasuredCall(2, "p", "r", 5, 44.0)) == 10
    assert count_chat_tokens(grown, None) == 130  # before any call: characters / 4


# ---------------------------------------------------------------------------- summarization that trains


def assert_every_call_is_trained(trace: vf.Trace, calls: list[GenerateRecord]) -> None:
    """Each branch's sampled tokens are, run by run, a model call's completion (ids and logprobs)
    after exactly that call's prompt; and every call is in some branch."""
    trained: set[int] = set()
    for branch in trace.branches:
        mask, ids, logprobs = branch.sampled_mask, branch.token_ids, branch.logprobs
        assert all(lp == 0.0 for lp, m in zip(logprobs, mask, strict=True) if not m)
        position = 0
        while position < len(ids):
            if not mask[position]:
                position += 1
                continue
            end = position
            while end < len(ids) and mask[end]:
                end += 1
            matches = [
                i
                for i, c in enumerate(calls)
                if len(c.prompt_ids) == position
                and c.prompt_ids == ids[:position]
                and c.completion_ids == ids[position:end]
            ]
            assert matches, f"sampled tokens {position}-{end} of a branch are no model call's completion"
            assert any(calls[i].logprobs == logprobs[position:end] for i in matches)
            trained.update(matches)
            position = end
    assert trained == set(range(len(calls))), f"calls never trained: {sorted(set(range(len(calls))) - trained)}"


@pytest.mark.parametrize("task", ["log-triage", "staged-build"])
async def test_a_summarizing_episode_trains_every_call(task: str, work: Path, tokenizer: Path) -> None:
    """A long task at a 20k window: Terminus-2 summarizes ahead of the limit (the window read from
    the server, the chat counted from the server's usage), the policy's progress survives in the
    summaries (reward 1), and every call, the summaries, questions and answers included, is in
    the trace as the model produced it: one sample for the first stretch and two more per
    summarization (the questions, asked with a fresh chat; the continued chat)."""
    config = env_config(work, tasks=LONG_TASKS, include=[task], harness={"agent": {"summarize": True}})
    with FakeInferenceServer(tokenizer, solving_policy(LONG_TASKS / task), max_model_len=20480) as server:
        (trace,) = (await run_in_process(config, server, tokenizer, SHORT_REPLIES)).traces
        calls = server.completions_of(trace.id)
    assert trace.ok, trace.errors
    assert trace.reward == 1.0
    summarizations = int(trace.metrics["harbor_summarizations"])
    assert summarizations >= 2 and trace.metrics["harbor_context_exhausted"] == 0.0
    assert max(len(c.prompt_ids) + len(c.completion_ids) for c in calls) <= 20480
    assert len(calls) == trace.metrics["harbor_turns"] + 3 * summarizations
    assert len(trace.branches) == 1 + 2 * summarizations
    assert_every_call_is_trained(trace, calls)
