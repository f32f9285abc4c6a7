"""The self-instruct loop every split shares, with a real AgentClient on a scripted OpenAI-compatible server:
rejections counted by reason, near-duplicates by one rule at the split's threshold, the file rewritten as each
task is accepted, the request budget, and resumed runs asking anew."""

from __future__ import annotations

import asyncio
import json

import pytest
from openai_stub import OpenAIStub

from agentinstruct.collection.agent import AgentClient
from agentinstruct.collection.selfinstruct import NearDuplicates, grow

# Request k's reply; requests past the list get a fresh valid task.
REPLIES = [
    '```json\n{"description": "Count the files in /tmp."}\n```',
    "Here is a task about files.",  # not JSON
    '{"description": "count the files in /tmp"}',  # near-duplicate of request 0
    '{"description": "List the users.", "bad": 1}',  # the split's check rejects it
    'Sure: {"description": "List the users."}',
]


def respond(messages: list[dict]) -> str:
    k = int(messages[-1]["content"].split()[-1])
    return REPLIES[k] if k < len(REPLIES) else json.dumps({"description": f"Task number {k} about {'x' * k}."})


async def check(candidate: object, k: int) -> dict:
    if not isinstance(candidate, dict) or set(candidate) != {"description"}:
        raise ValueError(f"bad shape (request {k})")
    return dict(candidate, request=k)


def run(stub: OpenAIStub, n: int, out, entries: list[dict], **kw) -> object:
    seen = NearDuplicates((e["description"] for e in entries), threshold=0.9)

    async def go():
        async with AgentClient("stub", base_url=stub.url) as agent:
            return await grow(agent, n, out, entries, seen, ask=lambda k: (k, f"request {k}"), check=check,
                              dump=json.dumps, concurrency=1, **kw)

    return asyncio.run(go())


def test_grow_counts_rejections_stores_each_acceptance_and_resumes_with_new_requests(tmp_path):
    out = tmp_path / "sub" / "tasks.json"
    entries: list[dict] = []
    with OpenAIStub(respond) as stub:
        report = run(stub, 2, out, entries)
        assert (report.requests, report.accepted, report.total) == (5, 2, 2)
        assert dict(report.rejected) == {"not JSON": 1, "near-duplicate": 1, "bad shape": 1}
        assert json.loads(out.read_text()) == entries == [{"description": "Count the files in /tmp.", "request": 0},
                                                         {"description": "List the users.", "request": 4}]
        # Resumed with the two stored tasks: requests start at 4 * 2, not at 0 again.
        stub.requests.clear()
        report = run(stub, 3, out, json.loads(out.read_text()))
        assert [r["messages"][-1]["content"] for r in stub.requests] == ["request 8"]
        assert report.accepted == 1 and report.total == 3 and len(json.loads(out.read_text())) == 3
        # The budget bounds the calls of one run even when too few tasks were accepted.
        report = run(stub, 10, tmp_path / "budget.json", [], max_requests=2)
        assert report.requests == 2 and report.accepted == 1 and report.total == 1


@pytest.mark.parametrize("text, threshold, repeats", [
    ("Count the *.TXT files!", 0.9, True),  # case and punctuation aside, the same words
    ("Größe von ä.txt?", 0.9, True),  # words are Unicode words
    ("abcdefghik", 0.9, True),  # difflib ratio 0.9 against abcdefghij
    ("abcdefghik", 0.91, False),  # the split's threshold decides
    ("How many users are there?", 0.9, False),
])
def test_near_duplicates_rule(text, threshold, repeats):
    seen = NearDuplicates(["count the txt files", "größe von ä txt", "abcdefghij"], threshold=threshold)
    assert seen.repeats(text) is repeats
