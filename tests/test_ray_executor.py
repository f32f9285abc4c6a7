"""The Ray executor on a real two-node Ray cluster (tests/ray_cluster.py): the same record set as a local build,
resume after kill -9 of the driver, and a worker node that dies mid-build.

One cluster serves the module (a node start costs seconds). The test that kills the worker node comes last and
leaves the cluster with the head alone; a test added after it would have to start a worker first
(``cluster.add_worker()``, then ``cluster.wait_for_nodes(2)``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest
from conftest import unavailable
from counter_builder import CounterBuilder, respond
from kill_harness import finished_lines, kill_at, run_cli
from openai_stub import OpenAIStub

from agentinstruct.builders.kg.builder import KgBuilder
from agentinstruct.collection.agent import AgentClient
from agentinstruct.collection.collect import build_split
from agentinstruct.collection.executors import LOST_RETRIES, LocalExecutor, RayExecutor
from agentinstruct.collection.journal import journal_path
from agentinstruct.datasetdir.layout import iter_records
from agentinstruct.filters.base import FilterPipeline, FormatErrorFilter, RewardFilter

pytestmark = pytest.mark.slow  # a cluster start is about 15 s on a small machine; each build adds actor starts

SECRET = "sk-test-NEVER-SHIP-ME-4242"
KEY_ENV = "AGENTINSTRUCT_TEST_NODE_KEY"
"""The model key's variable: set on the nodes only, so a key the server sees was read there, never shipped."""
BUILDER_SPEC = "counter_builder:CounterBuilder"


@pytest.fixture(scope="module")
def cluster():
    try:
        import ray  # noqa: F401
    except ImportError:
        unavailable("Ray is not installed (the ray extra: pip install -e '.[ray]'; make setup installs it)")
    from ray_cluster import RayCluster, RayUnavailable

    cluster = RayCluster(env={KEY_ENV: SECRET})
    try:
        cluster.start()
    except RayUnavailable as exc:
        cluster.stop()
        unavailable(str(exc))
    except BaseException:
        cluster.stop()
        raise
    try:
        yield cluster
    finally:
        cluster.stop()


def comparable(out: Path, split: str, config: str = "all") -> list[dict]:
    """A dir's records minus their creation time, in id order."""
    return sorted(({k: v for k, v in r.items() if k != "created_at"} for r in iter_records(out, config, split)),
                  key=lambda r: int(r["id"].split("_")[1]))


def counter_build(out: Path, executor, stub: OpenAIStub, n: int, *, concurrency: int):
    builder = CounterBuilder()

    async def go():
        async with AgentClient("stub", base_url=stub.url, backoff_base=0.01, max_retries=2) as agent:
            return await build_split(builder, builder.load_tasks(f"gen:{n}"), out, agent=agent, executor=executor,
                                     pipeline=FilterPipeline([RewardFilter(1.0), FormatErrorFilter(0)]),
                                     concurrency=concurrency, progress=False)

    return asyncio.run(go())


def test_kg_reference_build_on_two_nodes_gives_the_local_build(cluster, tmp_path):
    kg = KgBuilder.from_options(KgBuilder.Options())
    kg.options = KgBuilder.Options()
    tasks = kg.load_tasks("embedded")

    def build(out: Path, executor):
        return asyncio.run(build_split(kg, tasks, out, policy="reference", pipeline=FilterPipeline([RewardFilter(1.0)]),
                                       limit=12, concurrency=4, executor=executor, progress=False))

    local = build(tmp_path / "local", LocalExecutor())
    executor = RayExecutor(cluster.address)
    remote = build(tmp_path / "ray", executor)
    assert not remote.errors and remote.kept == local.kept > 0
    assert remote.skipped == local.skipped
    assert comparable(tmp_path / "ray", "kg") == comparable(tmp_path / "local", "kg")
    assert all(executor.ran.values()) and len(executor.ran) == 2


def test_kill_9_of_the_driver_then_resume_gives_the_local_record_set(cluster, tmp_path):
    n = 30
    with OpenAIStub(respond, latency=0.05) as stub:
        def args(out: Path, *executor: str) -> list[str]:
            return ["build", "os", "--builder", BUILDER_SPEC, "--tasks", f"gen:{n}", "--model", "stub", "--base-url",
                    stub.url, "--api-key-env", KEY_ENV, "--concurrency", "4", "--seed", "5", "--max-format-errors", "0",
                    "--out", str(out), *executor]

        clean, killed = tmp_path / "clean", tmp_path / "killed"
        on_ray = ("--executor", "ray", "--ray-address", cluster.address)
        outputs = [run_cli(args(clean), {KEY_ENV: SECRET}).communicate(timeout=300)]
        local_calls = len(stub.authorization)
        kills, crashed = kill_at(args(killed, *on_ray), killed, "os", (5,))  # the driver has no key
        outputs += crashed
        assert kills == 1, f"the build finished before it could be killed: {crashed}"
        assert 0 < finished_lines(killed, "os") < n
        final = run_cli(args(killed, *on_ray))
        outputs.append(final.communicate(timeout=300))
        assert final.returncode == 0, outputs[-1]
        assert f"{n} scored" in outputs[-1][0]
        # The nodes read the key from their own environment: the server saw it though the driver never had it.
        assert len(stub.authorization) > local_calls and set(stub.authorization) == {f"Bearer {SECRET}"}
    assert comparable(killed, "os") == comparable(clean, "os")
    assert comparable(killed, "os", "default") == comparable(clean, "os", "default")
    entries = [json.loads(x) for x in journal_path(killed, "os").read_text().splitlines()[1:]]
    finished = [e["id"] for e in entries if e["kind"] == "finished"]
    assert len(finished) == len(set(finished)) == n
    for path in killed.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert all(SECRET not in o and SECRET not in e for o, e in outputs)


def test_a_worker_node_that_dies_mid_build_leaves_errored_episodes_that_run_again(cluster, tmp_path):
    n = 24
    with OpenAIStub(respond, latency=0.3) as stub:
        counter_build(tmp_path / "local", LocalExecutor(), stub, n, concurrency=8)
        out = tmp_path / "ray"

        def kill_when_started() -> None:
            deadline = time.monotonic() + 120
            while finished_lines(out, "os") < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            cluster.kill_worker()

        killer = threading.Thread(target=kill_when_started)
        killer.start()
        executor = RayExecutor(cluster.address)
        try:
            outcome = counter_build(out, executor, stub, n, concurrency=8)
        finally:
            killer.join()
    assert len(executor.lost) == 1
    entries = [json.loads(x) for x in journal_path(out, "os").read_text().splitlines()[1:]]
    lost = [e for e in entries if e["kind"] == "errored"]
    assert lost, "the killed node's in-flight episodes must be journaled as errored"
    assert all("was lost" in e["error"] and "Ray node" in e["error"] for e in lost)
    finished = {e["id"] for e in entries if e["kind"] == "finished"}
    assert {e["id"] for e in lost} <= finished  # each ran again, in this run, on the node that lived
    assert not outcome.errors and len(outcome.records) == n and LOST_RETRIES >= 1
    assert comparable(out, "os") == comparable(tmp_path / "local", "os")
