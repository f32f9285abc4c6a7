"""The seven kg tools of AgentBench (get_relations, get_neighbors, intersection, get_attributes, argmax, argmin,
count) as SPARQL over a backend, with the variables ``#0, #1, ...`` they create.

As in AgentBench a variable is a program (an S-expression) and its type (the expected type of the relation that
made it); the observations name the variable and its type, list relations and attributes, and never the members.
The members are computed when the agent gives its final answer. Errors (unknown entity, relation not listed for
the variable, different types) and failed queries raise ToolError, whose message becomes the observation; an
unreachable endpoint (BackendUnavailable) is not the agent's error and goes through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from .sexpr import Expr, SExprError, iri, parse, select_query, to_text, where_clause
from .store import BackendUnavailable, QueryError, SparqlBackend

ARITY = {"get_relations": 1, "get_neighbors": 2, "intersection": 2, "get_attributes": 1, "argmax": 2, "argmin": 2,
         "count": 1}
TOOLS = tuple(ARITY)
"""The tool names, in the order the instructions present them."""

NUMBER_TYPE = "type.int"

# Freebase types whose values are literals: a property with one of these is an attribute, not a relation.
ATTRIBUTE_TYPES = ("type.int", "type.float", "type.datetime")
LITERAL_TYPES = (*ATTRIBUTE_TYPES, "type.text", "type.boolean", "type.rawstring", "type.uri", "type.key",
                 "type.enumeration", "type.id")

_VARIABLE = re.compile(r"^(?:variable\s+)?#(\d+)$", re.IGNORECASE)
_FREEBASE_ID = re.compile(r"^[mgf]\.[A-Za-z0-9_]+$")


class ToolError(ValueError):
    """A tool call that cannot be carried out; the message says why and goes back to the agent."""


@dataclass(frozen=True)
class Variable:
    """A set of entities (or a number, for count) the agent built: its Freebase type and S-expression program."""

    type: str
    program: str


def _property_query(subject_patterns: str, types: tuple[str, ...], negate: bool, limit: int) -> str:
    """Properties going out of the members bound to ?x whose expected type is (not) one of ``types``."""
    test = "NOT IN" if negate else "IN"
    return (
        f"SELECT DISTINCT ?rel WHERE {{ {subject_patterns} ?x ?rel ?obj . "
        f"?rel {iri('type.property.expected_type')} ?t . "
        f"FILTER(?t {test} ({', '.join(iri(t) for t in types)}) && "
        f"!STRSTARTS(STR(?rel), \"http://rdf.freebase.com/ns/type.\")) }} LIMIT {int(limit)}"
    )


def split_arguments(tool: str, text: str) -> list[str]:
    """Split a call's argument text by the tool's arity; the last argument of a two-argument tool is a schema name,
    so entity names with commas survive. Raise ToolError on a wrong count.

    >>> split_arguments("get_neighbors", "Smith, Jones & Co., film.film.directed_by")
    ['Smith, Jones & Co.', 'film.film.directed_by']
    >>> split_arguments("intersection", "#0,#1")
    ['#0', '#1']
    """
    text = text.strip()
    if tool not in ARITY:
        raise ToolError(f"unknown tool {tool}; the tools are {', '.join(TOOLS)}")
    if ARITY[tool] == 1:
        args = [text]
    elif tool != "intersection":
        head, comma, tail = text.rpartition(",")
        if not comma:
            raise ToolError(f"{tool} takes two arguments, a variable or entity and a name, separated by a comma")
        args = [head, tail]
    else:
        args = text.split(",")
        if len(args) != 2:
            raise ToolError("intersection takes exactly two variables, e.g. intersection(#0, #1)")
    args = [a.strip().strip("'\"`").strip() for a in args]
    if not all(args):
        raise ToolError(f"{tool} got an empty argument")
    return args


class KGSession:
    """One episode's tool state over a backend: the variables made so far and what get_relations/get_attributes
    listed for each argument (get_neighbors and argmax/argmin may only use a listed name, as in AgentBench).

    >>> from agentinstruct.builders.kg.store import OxigraphBackend
    >>> s = KGSession(OxigraphBackend.embedded(), {"Ilse Marrow": "m.0ai020"})
    >>> s.call("get_relations", ["Ilse Marrow"])
    'Observation: [film.director.films_directed, people.person.nationality, people.person.place_of_birth]'
    >>> s.call("get_neighbors", ["Ilse Marrow", "film.director.films_directed"])
    'Observation: variable #0, which are instances of film.film'
    >>> s.call("count", ["#0"])
    'Observation: variable #1, which is a number'
    >>> s.answer("#1")
    ['3']
    """

    def __init__(self, backend: SparqlBackend, entities: dict[str, str], max_results: int = 1000) -> None:
        self.backend = backend
        self.entities = entities
        self.max_results = max_results
        self.variables: list[Variable] = []
        self._listed: dict[tuple[str, str], set[str]] = {}  # (argument key, "relations"|"attributes") -> names

    def call(self, tool: str, args: list[str]) -> str:
        """Run one tool call; return the observation or raise ToolError."""
        if tool not in ARITY:
            raise ToolError(f"unknown tool {tool}; the tools are {', '.join(TOOLS)}")
        if len(args) != ARITY[tool]:
            raise ToolError(f"{tool} takes {ARITY[tool]} argument(s), got {len(args)}")
        method: Callable[..., str] = getattr(self, "_" + tool)
        try:
            return method(*args)
        except BackendUnavailable:
            raise
        except QueryError as e:
            raise ToolError(f"the knowledge base could not answer: {e}") from None
        except SExprError as e:  # a malformed id in the task's entity list
            raise ToolError(str(e)) from None

    def answer(self, ref: str) -> list[str]:
        """The members of a variable (ids, or the number for a count), sorted; ToolError if there is no such one."""
        var = self._variable(ref, "Final Answer")
        try:
            rows = self.backend.select(select_query(parse(var.program), self.max_results))
        except BackendUnavailable:
            raise
        except QueryError as e:
            raise ToolError(f"the knowledge base could not answer: {e}") from None
        values = {next(iter(r.values())) for r in rows if r}
        return sorted(values)

    # --- argument resolution

    def _resolve(self, arg: str, tool: str) -> tuple[str, Expr, str | None]:
        """(cache key, program, type) of an argument: a variable ``#n``, an entity name from the question, or an id."""
        m = _VARIABLE.match(arg)
        if m:
            var = self._variable(arg, tool)
            if var.type == NUMBER_TYPE:
                raise ToolError(f"#{m.group(1)} is a number (the result of count), not a set of entities")
            return f"#{m.group(1)}", parse(var.program), var.type
        if arg in self.entities:
            return self.entities[arg], self.entities[arg], None
        if _FREEBASE_ID.match(arg):
            return arg, arg, None
        known = ", ".join(self.entities) or "none"
        raise ToolError(f"{arg!r} is neither a variable like #0 nor an entity of the question (entities: {known})")

    def _variable(self, ref: str, tool: str) -> Variable:
        m = _VARIABLE.match(ref.strip())
        if not m:
            raise ToolError(f"{tool} needs a variable like #0, got {ref!r}")
        n = int(m.group(1))
        if n >= len(self.variables):
            made = f"#0 to #{len(self.variables) - 1}" if self.variables else "none yet"
            raise ToolError(f"there is no variable #{n} (variables so far: {made})")
        return self.variables[n]

    def _new(self, var: Variable) -> str:
        self.variables.append(var)
        n = len(self.variables) - 1
        if var.type == NUMBER_TYPE:
            return f"Observation: variable #{n}, which is a number"
        return f"Observation: variable #{n}, which are instances of {var.type}"

    def _list(self, key: str, kind: str, names: list[str]) -> str:
        self._listed[(key, kind)] = set(names)
        shown = ", ".join(sorted(names))
        return f"Observation: [{shown}]"

    def _expected_type(self, relation: str) -> str:
        rows = self.backend.select(
            f"SELECT ?t WHERE {{ {iri(relation)} {iri('type.property.expected_type')} ?t }} LIMIT 1"
        )
        if not rows:
            raise ToolError(f"{relation} has no expected type in the knowledge base")
        return rows[0]["t"]

    # --- the tools

    def _get_relations(self, arg: str) -> str:
        key, program, _ = self._resolve(arg, "get_relations")
        query = _property_query(where_clause(program), LITERAL_TYPES, negate=True, limit=self.max_results)
        return self._list(key, "relations", [r["rel"] for r in self.backend.select(query)])

    def _get_neighbors(self, arg: str, relation: str) -> str:
        key, program, _ = self._resolve(arg, "get_neighbors")
        listed = self._listed.get((key, "relations"))
        if listed is None:
            raise ToolError(f"call get_relations({arg}) first, then pick one of the relations it lists")
        if relation not in listed:
            raise ToolError(f"{relation} is not a relation of {arg}; use one that get_relations({arg}) listed")
        return self._new(Variable(self._expected_type(relation), to_text(("JOIN", ("R", relation), program))))

    def _intersection(self, first: str, second: str) -> str:
        for arg in (first, second):
            if not _VARIABLE.match(arg):
                raise ToolError(f"intersection takes two variables like #0, got {arg!r}")
        _, a, a_type = self._resolve(first, "intersection")
        _, b, b_type = self._resolve(second, "intersection")
        if a_type != b_type:
            raise ToolError(f"the two variables are of different types ({a_type} and {b_type}); "
                            "intersect variables of the same type")
        return self._new(Variable(a_type or "", to_text(("AND", a, b))))

    def _get_attributes(self, arg: str) -> str:
        if not _VARIABLE.match(arg):
            raise ToolError(f"get_attributes takes a variable like #0, got {arg!r}")
        key, program, _ = self._resolve(arg, "get_attributes")
        query = _property_query(where_clause(program), ATTRIBUTE_TYPES, negate=False, limit=self.max_results)
        return self._list(key, "attributes", [r["rel"] for r in self.backend.select(query)])

    def _superlative(self, op: str, arg: str, attribute: str) -> str:
        tool = op.lower()
        if not _VARIABLE.match(arg):
            raise ToolError(f"{tool} takes a variable like #0, got {arg!r}")
        key, program, var_type = self._resolve(arg, tool)
        listed = self._listed.get((key, "attributes"))
        if listed is None:
            raise ToolError(f"call get_attributes({arg}) first, then pick one of the attributes it lists")
        if attribute not in listed:
            raise ToolError(f"{attribute} is not an attribute of {arg}; use one that get_attributes({arg}) listed")
        return self._new(Variable(var_type or "", to_text((op, program, attribute))))

    def _argmax(self, arg: str, attribute: str) -> str:
        return self._superlative("ARGMAX", arg, attribute)

    def _argmin(self, arg: str, attribute: str) -> str:
        return self._superlative("ARGMIN", arg, attribute)

    def _count(self, arg: str) -> str:
        if not _VARIABLE.match(arg):
            raise ToolError(f"count takes a variable like #0, got {arg!r}")
        _, program, _ = self._resolve(arg, "count")
        return self._new(Variable(NUMBER_TYPE, to_text(("COUNT", program))))
