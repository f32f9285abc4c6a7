"""Episodes end to end through the real client and a real HTTP model server, with the counter test builder."""

from __future__ import annotations

import asyncio
import threading

import counter_builder
import pytest
from counter_builder import FORMAT_HELP, CounterBuilder, respond
from openai_stub import OpenAIStub

from agentinstruct.builders.base import Task
from agentinstruct.collection.agent import AgentClient, AgentUnavailable
from agentinstruct.collection.runner import run_episode, truncate
from agentinstruct.records.schema import check_record

BUILDER = CounterBuilder()


def task(start: int, target: int) -> Task:
    return Task(f"t{start}-{target}", counter_builder.instruction(start, target), "train_split",
                {"start": start, "target": target})


def episode(stub: OpenAIStub | None, t: Task, builder=BUILDER, policy="model", **kw):
    async def go():
        if stub is None:
            return await run_episode(builder, t, "os_0", policy=policy)
        async with AgentClient("stub", base_url=stub.url, backoff_base=0.01, **kw) as agent:
            return await run_episode(builder, t, "os_0", policy=policy, agent=agent)

    return asyncio.run(go())


@pytest.fixture
def stub():
    with OpenAIStub(respond) as server:
        yield server


def agent_turns(record):
    return record["conversations"][len(BUILDER.prompt(task(0, 1))):]


def test_solved_episode_is_a_valid_record_with_thudm_loss_flags(stub):
    record = episode(stub, task(1, 8))
    assert check_record(record) == []
    assert (record["reward"], record["success"]) == (1.0, True)
    assert record["reward_details"] == {"metric": "success", "components": [{"name": "counter_at_target", "value": 1.0}],
                                        "termination": "answered", "format_errors": 0}
    conv = record["conversations"]
    prompt = BUILDER.prompt(task(1, 8))
    assert [t["loss"] for t in conv[: len(prompt) - 1]] == [t["loss"] for t in prompt[:-1]]  # one-shot stays False
    assert conv[len(prompt) - 1]["value"] == counter_builder.instruction(1, 8) + "\n(The counter reads 1.)"
    tail = agent_turns(record)
    assert [t["from"] for t in tail] == ["gpt", "human", "gpt"]
    assert [t["loss"] for t in tail] == [True, None, True]
    assert tail[1]["value"] == "The counter is now 8."
    assert record["num_turns"] == 2 and record["instruction_source"] == "train_split"
    assert record["agent"] == {
        "model": "stub", "endpoint_kind": "openai-compatible", "policy": "model",
        "sampling": {"temperature": None, "top_p": None, "max_tokens": None, "seed": None},
        "usage": {"calls": 2, "prompt_tokens": record["agent"]["usage"]["prompt_tokens"], "completion_tokens": 14,
                  "cost_usd": None},
    }
    assert record["env"] == {"name": "counter", "version": "1", "backend": "in-process"}
    # The API saw THUDM's turns as chat roles: the prompt, then the agent's own replies as assistant messages.
    last = stub.requests[-1]["messages"]
    assert [m["role"] for m in last[:2]] == ["user", "assistant"] and last[-1]["content"] == "The counter is now 8."


def test_wrong_answer_scores_zero(stub):
    record = episode(stub, task(0, 9))  # the script answers 10 on multiples of 3
    assert (record["reward"], record["success"]) == (0.0, False)
    assert check_record(record) == []


def test_malformed_reply_is_an_observation_and_a_counted_format_error(stub):
    record = episode(stub, task(0, 5))  # the script first answers without an action on multiples of 5
    assert record["reward_details"]["format_errors"] == 1
    tail = agent_turns(record)
    assert tail[0]["value"] == "I will add something." and tail[0]["loss"] is True
    assert tail[1]["value"] == FORMAT_HELP
    assert record["success"] is True and record["num_turns"] == 3


def test_max_turns_ends_the_episode_and_the_record_ends_on_an_agent_turn(stub):
    stub.respond = lambda messages: "Thought: more.\nAction: add(1)"
    record = episode(stub, task(0, 100))
    assert record["reward_details"]["termination"] == "max_turns"
    assert record["num_turns"] == BUILDER.max_turns and record["success"] is False
    assert record["conversations"][-1]["from"] == "gpt"
    assert check_record(record) == []


def test_env_done_ends_the_episode(stub):
    stub.respond = lambda messages: "Thought: big.\nAction: add(5000)"
    record = episode(stub, task(0, 3))
    assert record["reward_details"]["termination"] == "finished" and record["num_turns"] == 1


def test_long_observations_are_cut_with_a_notice(stub):
    stub.respond = lambda messages: "Thought: look.\nAction: echo(5000)" if len(messages) < 9 else "Action: answer(1)"
    tail = agent_turns(episode(stub, task(0, 1)))
    assert tail[1]["value"] == "y" * 800 + "\n[truncated: 4200 more characters not shown]"

    class Short(CounterBuilder):
        observation_limit = 10

    tail = agent_turns(episode(stub, task(0, 1), builder=Short()))
    assert tail[1]["value"] == truncate("y" * 5000, 10)


def test_context_overflow_ends_the_episode(stub):
    stub.fail_next("context")
    record = episode(stub, task(0, 1))
    assert record["reward_details"]["termination"] == "context_limit"
    assert record["num_turns"] == 0 and record["reward"] == 0.0


def test_model_failure_propagates_and_the_env_is_closed(stub):
    stub.fail_next("500", "500", "500")
    with pytest.raises(AgentUnavailable):
        episode(stub, task(0, 1), max_retries=2)
    assert counter_builder.OPEN_ENVS == set()


def test_reference_policy_without_a_model_uses_template_thoughts():
    record = episode(None, task(2, 6), policy="reference")
    assert check_record(record) == []
    assert record["instruction_source"] == "task_derivation" and record["success"] is True
    assert record["agent"]["policy"] == "reference" and record["agent"]["model"] is None
    assert record["agent"]["usage"]["calls"] == 0
    tail = agent_turns(record)
    assert tail[0]["value"] == "Thought: I will take the next step of the solution with add `4` to move the task forward.\nAction: add(4)"
    assert tail[2]["value"].endswith("Action: answer(6)")


def test_reference_policy_with_a_model_asks_only_for_thoughts(stub):
    record = episode(stub, task(2, 6), policy="reference")
    tail = agent_turns(record)
    thought = "The counter has to move toward the target, so this is the step to take."
    assert tail[0]["value"] == f"Thought: {thought}\nAction: add(4)"
    assert record["agent"]["usage"]["calls"] == 2 and record["agent"]["model"] == "stub"
    second = stub.requests[-1]["messages"][0]["content"]
    assert "Action: add(4)" in second and "The counter is now 6." in second and "answer: 6" in second


def test_a_thought_that_breaks_the_format_falls_back_to_the_template(stub):
    stub.respond = lambda messages: "I add.\nAction: answer(99)"
    tail = agent_turns(episode(stub, task(2, 6), policy="reference"))
    assert tail[0]["value"].endswith("Action: add(4)") and "answer(99)" not in tail[0]["value"]


def test_a_thought_that_copies_the_prompt_falls_back_to_the_template(stub):
    stub.respond = lambda messages: "The agent's next action is:\nadd: 4\nThis means the agent will add 4."
    tail = agent_turns(episode(stub, task(2, 6), policy="reference"))
    assert tail[0]["value"] == "Thought: I will take the next step of the solution with add `4` to move the task forward.\nAction: add(4)"


@pytest.mark.parametrize("in_thread", [True, False])
def test_env_calls_run_where_the_builder_says_with_the_same_record(stub, in_thread):
    calls: set[str] = set()

    class Watched(CounterBuilder):
        env_in_thread = in_thread

        def open_env(self, t):
            env = super().open_env(t)
            for name in ("reset", "step", "score", "close"):
                def watched(*args, _call=getattr(env, name), **kwargs):
                    calls.add("loop" if threading.current_thread() is threading.main_thread() else "worker")
                    return _call(*args, **kwargs)
                setattr(env, name, watched)
            return env

    record = episode(stub, task(0, 7), builder=Watched())
    assert calls == {"worker" if in_thread else "loop"}
    plain = episode(stub, task(0, 7))
    assert record["conversations"] == plain["conversations"] and record["reward"] == plain["reward"] == 1.0
