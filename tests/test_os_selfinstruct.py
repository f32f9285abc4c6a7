"""os self-instruct with a scripted model behind a real OpenAI-compatible server: valid tasks are accepted and
stored in AgentBench's format, tasks whose example fails its checker (or that cannot be checked later) are
rejected, near-duplicates are dropped, and `build os --tasks self-instruct` collects on the stored tasks and
resumes without asking again."""

from __future__ import annotations

import asyncio
import json

import pytest
from openai_stub import OpenAIStub

from agentinstruct.builders.os.builder import NEW_PROBLEM, OsBuilder
from agentinstruct.builders.os.selfinstruct import STORE, TOPICS, candidate_entry
from agentinstruct.cli import main
from agentinstruct.collection.agent import AgentClient
from agentinstruct.datasetdir.layout import iter_records
from agentinstruct.records.validation import validate_paths

VALID = {"description": "How many .txt files are there in /root/docs?",
         "init": "mkdir -p /root/docs && touch /root/docs/a.txt /root/docs/b.txt /root/docs/c.md",
         "example": "ls /root/docs/*.txt | wc -l", "checker": "integer-match"}
SECOND = {"description": "What is the name of the only user whose login shell is /bin/tcsh?",
          "init": "useradd -M -s /bin/tcsh ghost", "example": "awk -F: '$7 == \"/bin/tcsh\" {print $1}' /etc/passwd",
          "checker": "string-match"}
# One reply per topic, in request order.
REPLIES = [
    "```json\n" + json.dumps(VALID) + "\n```",
    json.dumps(dict(VALID, description="What is the name of the file in /root/docs?", example="echo abc")),  # checker
    "Sure! " + json.dumps(dict(VALID, description="How many .txt files are in /root/docs?")),  # near-duplicate
    "I would create a task about files.",  # not JSON
    json.dumps(dict(VALID, description="Which number is stored in /root/n?", init="python3 -c 'import random; "
                    "print(random.randint(1, 10**9))' > /root/n", example="cat /root/n")),  # differs per sandbox
    json.dumps(dict(VALID, description="How many lines does /root/none have?", example="wc -l < /root/none")),
    json.dumps(SECOND),
]


def respond(messages: list[dict]) -> str:
    text = messages[-1]["content"]
    if text.startswith("Write one new practice task"):
        topic = text.split("Topic: ", 1)[1].split(". The answer", 1)[0]
        return REPLIES[TOPICS.index(topic) % len(REPLIES)] if TOPICS.index(topic) < len(REPLIES) else "no"
    # An episode on a stored task: answer what the example would print.
    task = messages[-1]["content"] if text.startswith(NEW_PROBLEM) else next(
        m["content"] for m in reversed(messages) if m["role"] == "user" and m["content"].startswith(NEW_PROBLEM))
    return "Think: I know it.\n\nAct: answer(2)" if "txt files" in task else "Think: it is ghost.\n\nAct: answer(ghost)"


@pytest.fixture(scope="module")
def builder(sandbox_backend: str) -> OsBuilder:
    return OsBuilder(backend=sandbox_backend)


def test_candidates_are_verified_deduplicated_and_stored(builder, tmp_path):
    store = tmp_path / "tasks.json"

    async def go():
        async with AgentClient("stub", base_url=stub.url) as agent:
            return await builder.self_instruct(agent, 2, store, concurrency=1)

    with OpenAIStub(respond) as stub:
        tasks, report = asyncio.run(go())
        assert report.requests == 7 and report.accepted == 2 and report.total == 2
        assert dict(report.rejected) == {"checker rejects the example's answer": 1, "near-duplicate": 1,
                                         "not JSON": 1, "not reproducible": 1, "example fails": 1}
        # Run again: the file already holds 2 tasks, so the model is not asked.
        asked = len(stub.requests)
        again, report = asyncio.run(go())
        assert len(stub.requests) == asked and report.requests == 0 and [t.payload for t in again] == [
            t.payload for t in tasks]
    stored = json.loads(store.read_text())
    assert [s["description"] for s in stored] == [VALID["description"], SECOND["description"]]
    assert stored[0]["evaluation"] == {"check": [None, {"language": "python", "file": "check/integer-match.py"}],
                                       "example": {"code": VALID["example"]}}
    assert [t.source for t in tasks] == ["self_instruct", "self_instruct"] and tasks[0].task_id == "tasks-00000"


@pytest.mark.parametrize("candidate, reason", [
    ([1, 2], "not a JSON object"),
    (dict(VALID, description=""), "bad description"),
    (dict(VALID, init=5), "bad init"),
    (dict(VALID, example="   "), "bad example"),
    (dict(VALID, checker="regex-match"), "unknown checker"),
])
def test_malformed_candidates_are_rejected_with_a_reason(candidate, reason):
    with pytest.raises(ValueError, match=reason):
        candidate_entry(candidate, "files")


def test_build_with_self_instruct_collects_on_the_stored_tasks_and_resumes(builder, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["build", "os", "--tasks", "self-instruct", "--n", "2", "--model", "stub", "--out", str(out),
            "--concurrency", "1"]
    with OpenAIStub(respond) as stub:
        rc = main(args + ["--base-url", stub.url])
        printed = capsys.readouterr()
        assert rc == 0, printed.err
        assert "2 scored, 2 kept" in printed.out and "2 tasks in the file" in printed.err
        asked = sum(1 for r in stub.requests if r["messages"][-1]["content"].startswith("Write one new"))
        assert asked == 7
        rc = main(args + ["--base-url", stub.url])
        printed = capsys.readouterr()
        assert rc == 0 and "using the tasks already in" in printed.err and "2 from the journal" in printed.out
        assert sum(1 for r in stub.requests if r["messages"][-1]["content"].startswith("Write one new")) == asked
    assert (out / STORE).exists() and validate_paths([out]).ok
    records = list(iter_records(out, "default", "os"))
    assert {r["instruction_source"] for r in records} == {"self_instruct"} and {r["reward"] for r in records} == {1.0}
