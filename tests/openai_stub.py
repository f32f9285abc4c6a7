"""A real OpenAI-compatible HTTP server for tests: scripted replies, latency, and faults on demand.

It speaks ``POST /v1/chat/completions`` and ``GET /v1/models`` over HTTP/1.1
(keep-alive) on 127.0.0.1, so tests drive the real ``openai`` client and the
real ``AgentClient``. Replies come from ``respond(messages) -> str``, a pure
function of the conversation, so concurrent and resumed runs get the same
answers whatever the request order. Faults for the next requests are queued
with ``fail_next``: ``429``/``500``/``503`` (status answers), ``hang`` (no
answer until the client gives up), ``drop`` (close the connection
mid-request), ``context`` (a 400 "context length exceeded"); ``die_after(n)``
stops the whole server after n answered requests; ``start()`` brings it back
on the same port.

Used by the engine's tests and by the os/db/kg builders' tests; also runnable
as a process for benchmarks (``spawn``), where it answers with the same
replies from an aiohttp server on one event loop: a thread per connection
sleeping out the latency cost the benchmarks' shared cores more than the
engine under test did at 256 requests in flight::

    python tests/openai_stub.py --responder counter_builder:respond --latency 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Responder = Callable[[list[dict[str, Any]]], str]
FAULTS = ("429", "500", "503", "hang", "drop", "context", "401")


def echo_last(messages: list[dict[str, Any]]) -> str:
    """The default responder: repeats the last user message."""
    return "echo: " + next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")


class OpenAIStub:
    """The server. Use as a context manager, or ``start()``/``stop()`` (stop then start again = a restart).

    Example:
        >>> with OpenAIStub(lambda messages: "Hello") as stub:  # doctest: +SKIP
        ...     AgentClient("stub", base_url=stub.url)
    """

    def __init__(self, respond: Responder = echo_last, *, latency: float = 0.0, port: int = 0, model: str = "stub"):
        self.respond = respond
        self.latency = latency
        self.model = model
        self.port = port
        self.requests: list[dict[str, Any]] = []
        """Bodies of the chat requests received (faulted ones included)."""
        self.authorization: list[str | None] = []
        self.answered = 0
        self._faults: deque[str] = deque()
        self._die_after: int | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()

    @property
    def url(self) -> str:
        """Base URL for the openai client (``.../v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def fail_next(self, *faults: str) -> None:
        """Answer the next requests with these faults, in order."""
        for fault in faults:
            if fault not in FAULTS:
                raise ValueError(f"unknown fault {fault!r}; expected one of {FAULTS}")
        with self._lock:
            self._faults.extend(faults)

    def die_after(self, n: int | None) -> None:
        """Stop the server (listening socket and open connections) once ``n`` more requests are answered."""
        with self._lock:
            self._die_after = None if n is None else self.answered + n

    def start(self) -> "OpenAIStub":
        """Listen (again) on 127.0.0.1:port; port 0 picks a free one, kept for restarts."""
        stub = self

        class Handler(_Handler):
            owner = stub

        self._stopping.clear()
        self._server = _Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection (a server that died)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            conns, self._connections = list(self._connections), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> "OpenAIStub":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_fault(self) -> str | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _answered(self) -> None:
        with self._lock:
            self.answered += 1
            die = self._die_after is not None and self.answered >= self._die_after
            if die:
                self._die_after = None
        if die:
            # Dead from now on: requests already on open connections are dropped while the stop below waits for the
            # accept loop (a fast client would otherwise be answered for another poll interval).
            self._stopping.set()
            threading.Thread(target=self.stop, daemon=True).start()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 resets connections when 64 episodes connect at once


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes; Nagle + delayed ACK would add 40 ms
    owner: OpenAIStub

    def setup(self) -> None:
        super().setup()
        with self.owner._lock:
            self.owner._connections.add(self.connection)

    def finish(self) -> None:
        with self.owner._lock:
            self.owner._connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read assertions, not access logs
        pass

    def _drop(self) -> None:
        """Cut the connection without an answer."""
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def _json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": self.owner.model, "object": "model"}]})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        owner = self.owner
        if owner._stopping.is_set():  # a server that died answers nothing
            self._drop()
            return
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        with owner._lock:
            owner.requests.append(body)
            owner.authorization.append(self.headers.get("Authorization"))
        fault = owner._next_fault()
        if fault == "hang":
            owner._stopping.wait(60)  # longer than any test's client timeout; a stop ends it
            self.close_connection = True
            return
        if fault == "drop":
            self._drop()
            return
        if owner.latency:
            time.sleep(owner.latency)
        if fault in ("429", "500", "503", "401"):
            message = {"429": "rate limited", "500": "internal error", "503": "overloaded", "401": "bad key"}[fault]
            headers = {"Retry-After": "0"} if fault == "429" else {}
            self._json(int(fault), {"error": {"message": message, "type": "stub"}}, headers)
            return
        if fault == "context":
            self._json(400, {"error": {"message": "This model's maximum context length is 2048 tokens; "
                                       "your messages exceed it", "code": "context_length_exceeded"}})
            return
        self._json(200, completion(owner.respond, body, owner.model, owner.answered))
        owner._answered()


def completion(respond: Responder, body: dict[str, Any], model: str, n: int) -> dict[str, Any]:
    """The chat completion answering request ``body``: ``respond``'s text, tokens counted as words."""
    messages = body.get("messages", [])
    text = respond(messages)
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
    return {
        "id": f"chatcmpl-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", model),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()),
                  "total_tokens": prompt_tokens + len(text.split())},
    }


async def serve(respond: Responder, latency: float, port: int, model: str = "stub") -> None:
    """Answer chat requests after ``latency`` seconds on one event loop until cancelled; prints the base URL."""
    from aiohttp import web

    answered = 0

    async def chat(request: web.Request) -> web.Response:
        nonlocal answered
        body = await request.json()
        await asyncio.sleep(latency)
        answered += 1
        return web.json_response(completion(respond, body, model, answered))

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": model, "object": "model"}]})

    app = web.Application()
    app.add_routes([web.post("/v1/chat/completions", chat), web.get("/v1/models", models)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024)
    await site.start()
    print(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/v1", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def spawn(responder: str, latency: float, paths: Sequence[Path] = ()) -> tuple[subprocess.Popen, str]:
    """This server in a process of its own (``module:function`` responder importable from ``paths`` and tests/):
    the process and its base URL. Stop it with ``terminate()``."""
    here = Path(__file__).resolve().parent
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--responder", responder, "--latency", str(latency)],
        stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in [here, *paths])},
    )
    return proc, proc.stdout.readline().strip()


def main(argv: list[str] | None = None) -> None:
    """Serve until killed; print the base URL on the first line of stdout."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--responder", default="", help="module:function answering messages (default: echo)")
    p.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args(argv)
    respond = echo_last
    if args.responder:
        module, _, name = args.responder.partition(":")
        respond = getattr(importlib.import_module(module), name)
    try:
        asyncio.run(serve(respond, args.latency, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
