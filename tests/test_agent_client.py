"""AgentClient against a real OpenAI-compatible HTTP server: replies, usage, retries, timeouts, refusals, secrets."""

from __future__ import annotations

import asyncio
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from openai_stub import OpenAIStub

from agentinstruct.collection.agent import AgentClient, AgentRejected, AgentUnavailable, ContextLimit, Prices, Usage

SECRET = "sk-test-DO-NOT-LEAK-4242"
HELLO = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def stub():
    with OpenAIStub(lambda messages: "Hi, how can I help?") as server:
        yield server


def client(stub: OpenAIStub, **kw) -> AgentClient:
    kw.setdefault("backoff_base", 0.01)
    return AgentClient("stub-model", base_url=stub.url, **kw)


def chat(agent: AgentClient, messages=HELLO):
    async def go():
        async with agent:
            return await agent.chat(messages)

    return asyncio.run(go())


def test_reply_usage_sampling_and_key(stub, monkeypatch):
    monkeypatch.setenv("MY_KEY", SECRET)
    agent = client(stub, api_key_env="MY_KEY", temperature=0.3, top_p=0.9, max_tokens=64, seed=7)
    reply = chat(agent)
    assert reply.text == "Hi, how can I help?"
    assert (reply.prompt_tokens, reply.completion_tokens, reply.retries) == (2, 5, 0)
    body = stub.requests[-1]
    assert body["model"] == "stub-model" and body["messages"] == HELLO
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (0.3, 0.9, 64, 7)
    assert stub.authorization[-1] == f"Bearer {SECRET}"
    assert agent.sampling == {"temperature": 0.3, "top_p": 0.9, "max_tokens": 64, "seed": 7}
    assert agent.endpoint_kind == "openai-compatible"


def test_unset_sampling_is_left_to_the_server_and_missing_key_gets_placeholder(stub, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    chat(client(stub))
    body = stub.requests[-1]
    assert not {"temperature", "top_p", "max_tokens", "seed"} & set(body)
    assert stub.authorization[-1] == "Bearer no-key"


@pytest.mark.parametrize("faults", [("429", "429"), ("500", "503"), ("drop",), ("429", "drop", "500")])
def test_transient_failures_are_retried_and_counted(stub, faults):
    stub.fail_next(*faults)
    agent = client(stub)
    reply = chat(agent)
    assert reply.text == "Hi, how can I help?"
    assert reply.retries == len(faults) == agent.stats.retries
    assert len(stub.requests) == len(faults) + 1
    assert agent.stats.failures == 0


def test_timeout_is_retried(stub):
    stub.fail_next("hang")
    agent = client(stub, timeout=0.5)
    reply = chat(agent)
    assert reply.retries == 1
    assert agent.stats.by_cause == {"timeout": 1}


def test_retries_exhausted_raise_agent_unavailable_without_the_key(stub, monkeypatch, caplog):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    stub.fail_next(*["503"] * 4)
    agent = client(stub, max_retries=3)
    with caplog.at_level(logging.DEBUG), pytest.raises(AgentUnavailable, match=r"failed 4 times in a row; last: HTTP 503"):
        chat(agent)
    assert len(stub.requests) == 4
    assert (agent.stats.retries, agent.stats.failures) == (3, 1)
    assert SECRET not in caplog.text


def test_dead_server_is_unavailable(stub):
    stub.stop()
    with pytest.raises(AgentUnavailable, match="connection error"):
        chat(client(stub, max_retries=2))


def test_refusal_is_not_retried(stub, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    stub.fail_next("401")
    with pytest.raises(AgentRejected, match="refused the request: HTTP 401: bad key") as err:
        chat(client(stub))
    assert len(stub.requests) == 1
    assert SECRET not in str(err.value)


def test_context_overflow_is_its_own_error(stub):
    stub.fail_next("context")
    with pytest.raises(ContextLimit, match="maximum context length"):
        chat(client(stub))
    assert len(stub.requests) == 1


def test_backoff_grows_with_jitter_and_honours_retry_after():
    agent = AgentClient("m", base_url="http://127.0.0.1:9/v1", backoff_base=1.0, backoff_max=8.0)
    delays = [agent._delay(attempt, None) for attempt in range(6)]
    for attempt, delay in enumerate(delays):
        cap = min(8.0, 2**attempt)
        assert cap / 2 <= delay <= cap
    assert agent._delay(0, 3.0) == 3.0
    assert agent._delay(0, 999.0) <= 1.0  # a Retry-After beyond the cap falls back to the schedule


def test_prices_and_usage_record():
    agent = AgentClient("m", base_url="http://127.0.0.1:9/v1", prices=Prices(prompt=1.0, completion=2.0))
    usage = Usage(calls=2, prompt_tokens=1500, completion_tokens=500)
    assert agent.usage_record(usage) == {"calls": 2, "prompt_tokens": 1500, "completion_tokens": 500, "cost_usd": 2.5}
    free = AgentClient("m", base_url="http://127.0.0.1:9/v1")
    assert free.usage_record(usage)["cost_usd"] is None


def test_requests_go_through_the_proxy_the_environment_names(stub, monkeypatch):
    # The stub stands in for the proxy: a request for a host that does not resolve reaches it only through the proxy.
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{stub.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    agent = AgentClient("stub-model", base_url="http://model.invalid/v1", max_retries=0)
    assert chat(agent).text == "Hi, how can I help?"
    monkeypatch.setenv("NO_PROXY", "model.invalid")
    with pytest.raises(AgentUnavailable, match="connection error"):
        chat(AgentClient("stub-model", base_url="http://model.invalid/v1", max_retries=0))


def test_an_answer_that_is_not_a_chat_completion_is_named():
    class NotJson(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "9")
            self.end_headers()
            self.wfile.write(b"<html>hi!")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotJson)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        agent = AgentClient("m", base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", max_retries=0)
        with pytest.raises(AgentUnavailable, match=r"not a chat completion: '<html>hi!'"):
            chat(agent)
    finally:
        server.shutdown()
