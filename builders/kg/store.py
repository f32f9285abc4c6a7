"""SPARQL backends for the kg split: any SPARQL 1.1 endpoint over HTTP, and an embedded Oxigraph store.

Both take the same query text and answer rows in the same shape (variable -> value, Freebase IRIs shortened to
their ids, literals as their lexical form), so a tool gives the same observation on a user's Freebase Virtuoso and
on the embedded graph. Both give up on a query after a timeout (for HTTP, the socket timeout of the request) and
read at most ``max_rows`` rows.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from pathlib import Path

import pyoxigraph

from .sexpr import iri, local_name

Row = dict[str, str]

EMBEDDED_GRAPH = Path(__file__).parent / "data" / "graph.ttl"

# Freebase dumps hold both directions of every edge; a compact source may hold one. This adds the other from
# the reverse_property / master_property declarations, and changes nothing where both are present.
_ADD_REVERSE_EDGES = f"""INSERT {{ ?o ?rev ?s }} WHERE {{
  {{ ?rel {iri("type.property.reverse_property")} ?rev }} UNION {{ ?rev {iri("type.property.master_property")} ?rel }}
  ?s ?rel ?o . FILTER(isIRI(?o))
}}"""


class QueryError(RuntimeError):
    """A query the backend could not answer: timeout, query error, bad response. The agent sees it."""


class BackendUnavailable(QueryError):
    """The endpoint cannot be reached (connection refused, DNS, 502/503/504): not the agent's doing, so it is
    raised through the episode, which the engine records as errored and retries on resume."""


class SparqlBackend(ABC):
    """Runs SPARQL SELECT queries."""

    name: str

    def __init__(self, timeout_s: float = 30.0, max_rows: int = 10_000) -> None:
        self.timeout_s = timeout_s
        self.max_rows = max_rows

    @abstractmethod
    def select(self, query: str) -> list[Row]:
        """Rows of a SELECT query, at most ``max_rows``; raise QueryError past ``timeout_s`` or on failure.

        >>> store = OxigraphBackend.embedded()
        >>> store.select('SELECT ?n WHERE { <http://rdf.freebase.com/ns/m.0ai001> '
        ...              '<http://rdf.freebase.com/ns/type.object.name> ?n }')
        [{'n': 'Valdoria'}]
        """


def _value(term: dict) -> str:
    """One SPARQL JSON results term as a string: IRIs shortened to Freebase ids, literals as their text."""
    return local_name(term["value"]) if term.get("type") == "uri" else term["value"]


class HttpSparqlBackend(SparqlBackend):
    """A SPARQL 1.1 Protocol endpoint (Virtuoso's ``/sparql``, Oxigraph's ``/query``, Fuseki, ...)."""

    name = "sparql-http"

    def __init__(self, url: str, timeout_s: float = 30.0, max_rows: int = 10_000) -> None:
        super().__init__(timeout_s, max_rows)
        if urllib.parse.urlparse(url).scheme not in ("http", "https"):
            raise ValueError(f"--sparql-url must be an http(s) URL, got {url!r}")
        self.url = url

    def select(self, query: str) -> list[Row]:
        request = urllib.request.Request(
            self.url,
            data=urllib.parse.urlencode({"query": query}).encode(),
            headers={
                "Accept": "application/sparql-results+json",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as e:
            detail = e.read(300).decode("utf-8", "replace").strip()
            error = BackendUnavailable if e.code in (502, 503, 504) else QueryError
            raise error(f"SPARQL endpoint {self.url} answered HTTP {e.code}: {detail}") from None
        except TimeoutError:
            raise QueryError(f"SPARQL query timed out after {self.timeout_s:g} s at {self.url}") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            if isinstance(reason, TimeoutError):
                raise QueryError(f"SPARQL query timed out after {self.timeout_s:g} s at {self.url}") from None
            raise BackendUnavailable(f"SPARQL endpoint {self.url} unreachable: {reason}") from None
        try:
            bindings = json.loads(body)["results"]["bindings"]
        except (ValueError, KeyError, TypeError):
            raise QueryError(f"SPARQL endpoint {self.url} did not answer SPARQL JSON results") from None
        return [{k: _value(v) for k, v in b.items()} for b in bindings[: self.max_rows]]


class OxigraphBackend(SparqlBackend):
    """An in-process Oxigraph store loaded from N-Triples/Turtle files (the default, and the tests' graph).

    Oxigraph yields solutions lazily, so the timeout is checked between solutions; one solution that takes long
    (a big aggregate) finishes before the check sees it.
    """

    name = "oxigraph"

    def __init__(self, paths: list[Path], timeout_s: float = 30.0, max_rows: int = 10_000) -> None:
        super().__init__(timeout_s, max_rows)
        self.paths = [Path(p) for p in paths]
        self.store = pyoxigraph.Store()
        for path in self.paths:
            try:
                self.store.load(path=str(path))
            except (OSError, SyntaxError, ValueError) as e:
                raise ValueError(f"{path}: cannot load as RDF: {e}") from None
        self.store.update(_ADD_REVERSE_EDGES)

    @classmethod
    def embedded(cls, timeout_s: float = 30.0, max_rows: int = 10_000) -> "OxigraphBackend":
        """The graph shipped with the package (a few hundred triples: loading takes milliseconds)."""
        return cls([EMBEDDED_GRAPH], timeout_s, max_rows)

    def select(self, query: str) -> list[Row]:
        deadline = time.monotonic() + self.timeout_s
        try:
            solutions = self.store.query(query)
            names = [v.value for v in solutions.variables]
            rows: list[Row] = []
            for solution in solutions:
                if time.monotonic() > deadline:
                    raise QueryError(f"SPARQL query timed out after {self.timeout_s:g} s")
                rows.append({n: _term(solution[n]) for n in names if solution[n] is not None})
                if len(rows) >= self.max_rows:
                    break
        except SyntaxError as e:
            raise QueryError(f"SPARQL syntax error: {e}") from None
        except OSError as e:
            raise QueryError(f"SPARQL evaluation failed: {e}") from None
        if time.monotonic() > deadline:
            raise QueryError(f"SPARQL query timed out after {self.timeout_s:g} s")
        return rows

    def dump_ntriples(self, path: Path) -> None:
        """Write the loaded graph (reverse edges included) as N-Triples, e.g. to serve it from another store."""
        self.store.dump(output=str(path), format=pyoxigraph.RdfFormat.N_TRIPLES, from_graph=pyoxigraph.DefaultGraph())


def _term(term: object) -> str:
    if isinstance(term, pyoxigraph.NamedNode):
        return local_name(term.value)
    return term.value  # Literal (lexical form) or BlankNode (its label)
