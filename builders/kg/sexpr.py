"""GrailQA/AgentBench S-expressions (JOIN, R, AND, COUNT, ARGMAX, ARGMIN) parsed and compiled to SPARQL over Freebase.

An S-expression denotes a set of entities (or, under COUNT, a number):

- an atom ``m.0abc`` is the entity itself; an atom as an argument of AND is a class (``film.film``);
- ``(JOIN r X)`` is every ``s`` with ``s r x`` for some ``x`` in X, and ``(JOIN (R r) X)`` every ``o`` with ``x r o``;
- ``(AND A B)`` is the intersection (a class atom keeps the members of that type);
- ``(COUNT X)`` is the size of X, ``(ARGMAX X attr)`` / ``(ARGMIN X attr)`` the members with the largest/smallest
  value of the attribute.

Variables of the kg tools are S-expressions too (``get_neighbors(#0, r)`` makes ``(JOIN (R r) <#0>)``), so the tools
and a question's gold S-expression go through the same compiler and run as the same SPARQL on every backend.
"""

from __future__ import annotations

import re
from typing import Union

Expr = Union[str, tuple]
"""An atom (entity, class, relation) or ``(OPERATOR, arg, ...)``; ``(R r)`` is the reversed relation ``r``."""

FREEBASE_NS = "http://rdf.freebase.com/ns/"

# Freebase ids and schema names only: anything else could break out of the IRI it is pasted into. Queries use full
# IRIs, not ns: prefixed names: Oxigraph's SPARQL parser rejects prefixed names with two dots (ns:a.b.c).
_ATOM = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_ARITY = {"JOIN": 2, "AND": 2, "COUNT": 1, "ARGMAX": 2, "ARGMIN": 2, "R": 1}


class SExprError(ValueError):
    """An S-expression that does not parse, or uses an operator or literal this compiler does not support."""


def parse(text: str) -> Expr:
    """Parse S-expression text into nested tuples.

    >>> parse("(AND film.film (JOIN film.film.directed_by m.0ai020))")
    ('AND', 'film.film', ('JOIN', 'film.film.directed_by', 'm.0ai020'))
    """
    tokens = _TOKEN.findall(text)
    if not tokens:
        raise SExprError("empty S-expression")
    expr, end = _parse_at(tokens, 0)
    if end != len(tokens):
        raise SExprError(f"unexpected text after the expression: {' '.join(tokens[end:])!r}")
    _check(expr, top=True)
    return expr


def _parse_at(tokens: list[str], i: int) -> tuple[Expr, int]:
    if i >= len(tokens):
        raise SExprError("unbalanced parentheses: the expression ends early")
    token = tokens[i]
    if token == ")":
        raise SExprError("unbalanced parentheses: ')' without '('")
    if token != "(":
        return token, i + 1
    items: list[Expr] = []
    i += 1
    while True:
        if i >= len(tokens):
            raise SExprError("unbalanced parentheses: missing ')'")
        if tokens[i] == ")":
            return tuple(items), i + 1
        item, i = _parse_at(tokens, i)
        items.append(item)


def _check(expr: Expr, top: bool = False) -> None:
    """Reject what the compiler cannot express, with the reason, before any query is built."""
    if isinstance(expr, str):
        if not _ATOM.match(expr):
            raise SExprError(f"unsupported atom {expr!r} (literals and comparisons are not supported)")
        return
    if not expr or not isinstance(expr[0], str) or expr[0] not in _ARITY or expr[0] == "R":
        head = expr[0] if expr and isinstance(expr[0], str) else expr[:1]
        raise SExprError(f"unsupported operator {head!r}; supported: JOIN, R, AND, COUNT, ARGMAX, ARGMIN")
    op, args = expr[0], expr[1:]
    if len(args) != _ARITY[op]:
        raise SExprError(f"{op} takes {_ARITY[op]} arguments, got {len(args)}")
    if op == "COUNT" and not top:
        raise SExprError("COUNT is only supported as the outermost operator")
    if op == "JOIN":
        rel = args[0]
        if isinstance(rel, tuple):
            if len(rel) != 2 or rel[0] != "R" or not isinstance(rel[1], str):
                raise SExprError(f"a JOIN relation must be a relation or (R relation), got {to_text(rel)}")
            _check(rel[1])
        else:
            _check(rel)
        _check(args[1])
    elif op == "AND":
        if all(isinstance(a, str) for a in args):
            raise SExprError("AND needs at least one sub-expression (two atoms are not a set)")
        for a in args:
            _check(a)
    elif op in ("ARGMAX", "ARGMIN"):
        if not isinstance(args[1], str):
            raise SExprError(f"{op} takes an attribute name as its second argument")
        _check(args[0])
        _check(args[1])
    else:
        _check(args[0])


def to_text(expr: Expr) -> str:
    """S-expression text of a parsed expression.

    >>> to_text(("JOIN", ("R", "film.film.genre"), "m.0ai060"))
    '(JOIN (R film.film.genre) m.0ai060)'
    """
    if isinstance(expr, str):
        return expr
    return "(" + " ".join(to_text(e) for e in expr) + ")"


def iri(name: str) -> str:
    """The full Freebase IRI of an id or schema name, checked so it cannot inject SPARQL.

    >>> iri("m.0ai020")
    '<http://rdf.freebase.com/ns/m.0ai020>'
    """
    if not _ATOM.match(name):
        raise SExprError(f"not a Freebase id or schema name: {name!r}")
    return f"<{FREEBASE_NS}{name}>"


def local_name(value: str) -> str:
    """A Freebase IRI's id (``m.0abc``); other IRIs and literals are returned unchanged.

    >>> local_name("http://rdf.freebase.com/ns/m.0ai020")
    'm.0ai020'
    """
    return value[len(FREEBASE_NS):] if value.startswith(FREEBASE_NS) else value


class _Compiler:
    """Graph patterns for an expression; every call makes fresh variable names so sub-queries never collide."""

    def __init__(self) -> None:
        self.n = 0

    def fresh(self) -> str:
        self.n += 1
        return f"?v{self.n}"

    def patterns(self, expr: Expr, var: str) -> list[str]:
        if isinstance(expr, str):
            return [f"VALUES {var} {{ {iri(expr)} }}"]
        op = expr[0]
        if op == "JOIN":
            rel, sub = expr[1], expr[2]
            other = self.fresh()
            inner = self.patterns(sub, other)
            if isinstance(rel, tuple):
                return inner + [f"{other} {iri(rel[1])} {var} ."]
            return inner + [f"{var} {iri(rel)} {other} ."]
        if op == "AND":
            out: list[str] = []
            for part in expr[1:]:
                if isinstance(part, str):
                    out.append(f"{var} {iri('type.object.type')} {iri(part)} .")
                else:
                    out.extend(self.patterns(part, var))
            return out
        if op in ("ARGMAX", "ARGMIN"):
            sub, attr = expr[1], expr[2]
            member, value, best = self.fresh(), self.fresh(), self.fresh()
            agg = "MAX" if op == "ARGMAX" else "MIN"
            inner = " ".join(self.patterns(sub, member))
            return [
                f"{{ SELECT ({agg}({value}) AS {best}) WHERE {{ {inner} {member} {iri(attr)} {value} . }} }}",
                *self.patterns(sub, var),
                f"{var} {iri(attr)} {best} .",
            ]
        raise SExprError(f"{op} cannot appear inside another expression")


def where_clause(expr: Expr, var: str = "?x") -> str:
    """The graph patterns that bind ``var`` to the members of ``expr`` (for queries built around a variable).

    >>> where_clause(parse("(JOIN (R film.film.genre) m.0ai060)"))
    'VALUES ?v1 { <http://rdf.freebase.com/ns/m.0ai060> } ?v1 <http://rdf.freebase.com/ns/film.film.genre> ?x .'
    """
    if not isinstance(expr, str) and expr[0] == "COUNT":
        raise SExprError("a COUNT is a number, not a set of entities")
    return " ".join(_Compiler().patterns(expr, var))


def select_query(expr: Expr, limit: int) -> str:
    """The SPARQL query answering ``expr``: ``?x`` per member (at most ``limit``), or ``?count`` under COUNT.

    >>> select_query(parse("(COUNT (JOIN (R film.director.films_directed) m.0ai020))"), 100)[:37]
    'SELECT (COUNT(DISTINCT ?x) AS ?count)'
    """
    if not isinstance(expr, str) and expr[0] == "COUNT":
        return f"SELECT (COUNT(DISTINCT ?x) AS ?count) WHERE {{ {where_clause(expr[1])} }}"
    return f"SELECT DISTINCT ?x WHERE {{ {where_clause(expr)} }} LIMIT {int(limit)}"
