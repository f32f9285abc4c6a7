"""The kg HTTP SPARQL backend against a real SPARQL server (Oxigraph's, on 127.0.0.1) serving the embedded graph:
the same queries give the same rows and the same episodes as the in-process store; endpoint failures are clear."""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sparql_server import oxigraph_program, oxigraph_server

from agentinstruct.builders.kg.builder import KgBuilder
from agentinstruct.builders.kg.sexpr import parse, select_query
from agentinstruct.builders.kg.store import BackendUnavailable, HttpSparqlBackend, OxigraphBackend, QueryError
from agentinstruct.builders.kg.tools import KGSession

pytestmark = pytest.mark.skipif(oxigraph_program() is None, reason="oxigraph server not installed (test extra)")

EMBEDDED = KgBuilder()
TASKS = EMBEDDED.load_tasks("embedded")


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    # The store's dump holds both directions of every edge, as a Freebase dump does.
    dump = tmp_path_factory.mktemp("kg") / "graph.nt"
    OxigraphBackend.embedded().dump_ntriples(dump)
    with oxigraph_server([dump]) as url:
        yield url


def test_both_backends_give_the_same_rows(endpoint):
    http, local = HttpSparqlBackend(endpoint), EMBEDDED.store
    for task in TASKS:
        query = select_query(parse(task.payload["s_expression"]), 1000)
        assert sorted(map(sorted, (r.items() for r in http.select(query)))) == \
            sorted(map(sorted, (r.items() for r in local.select(query)))), task.task_id
        for name in task.payload["entities"]:
            listed = [KGSession(b, task.payload["entities"]).call("get_relations", [name]) for b in (http, local)]
            assert listed[0] == listed[1] and listed[0] != "Observation: []"


def test_reference_episodes_are_identical_over_http(endpoint):
    remote = KgBuilder(HttpSparqlBackend(endpoint))
    assert remote.backend == "sparql-http"
    for task in TASKS[::3]:
        actions = remote.reference_actions(task)
        assert actions == EMBEDDED.reference_actions(task)
        observations = {}
        for name, builder in (("http", remote), ("local", EMBEDDED)):
            with builder.open_env(task) as env:
                observations[name] = [env.step(a).observation for a in actions]
                assert env.score(actions[-1]).reward == 1.0, (name, task.task_id)
        assert observations["http"] == observations["local"]


@contextmanager
def html_server():
    """A web server that answers every POST with a web page (a wrong URL given as the endpoint)."""

    class Page(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            body = b"<html><body>Welcome</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/sparql"
    finally:
        server.shutdown()
        server.server_close()


def test_endpoint_failures_are_clear(endpoint):
    with pytest.raises(QueryError, match="answered HTTP 400"):
        HttpSparqlBackend(endpoint).select("SELECT WHERE")
    with pytest.raises(QueryError, match="answered HTTP 404"):  # the server's root, not its query endpoint
        HttpSparqlBackend(endpoint.rsplit("/", 1)[0] + "/").select("SELECT * WHERE { ?s ?p ?o } LIMIT 1")
    with html_server() as url, pytest.raises(QueryError, match="did not answer SPARQL JSON results"):
        HttpSparqlBackend(url).select("SELECT * WHERE { ?s ?p ?o } LIMIT 1")
    with pytest.raises(ValueError, match="must be an http"):
        HttpSparqlBackend("file:///etc/passwd")

    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    down = KgBuilder(HttpSparqlBackend(f"http://127.0.0.1:{port}/sparql"))
    task = TASKS[0]
    with pytest.raises(BackendUnavailable, match="unreachable"):
        down.store.select("ASK {}")
    with down.open_env(task) as env:  # not the agent's fault: the episode errors (and is retried) instead of scoring
        with pytest.raises(BackendUnavailable):
            env.step(EMBEDDED.reference_actions(task)[0])

    silent = socket.socket()  # accepts connections, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True).start()
    try:
        slow = HttpSparqlBackend(f"http://127.0.0.1:{silent.getsockname()[1]}/sparql", timeout_s=0.5)
        with pytest.raises(QueryError, match="timed out after 0.5 s"):
            slow.select("ASK {}")
        with KgBuilder(slow).open_env(task) as env:  # a slow query is an observation the agent can react to
            assert "timed out" in env.step(EMBEDDED.reference_actions(task)[0]).observation
    finally:
        for conn in accepted:
            conn.close()
        silent.close()
