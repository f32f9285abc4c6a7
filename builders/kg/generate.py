"""Questions for the embedded knowledge graph, made by sampling S-expression patterns over it and executing them.

Patterns (GrailQA's, with the class of the answer in front): ``join1`` ``(AND T (JOIN (R r) e))``, ``join2`` two
hops, ``and`` two one-hop sets intersected, ``and2`` a two-hop set intersected with a one-hop set, ``count``,
``argmax`` and ``argmin`` over a one-hop set. Half of the ``(JOIN (R r) X)`` are written the other way,
``(JOIN r' X)`` with r's reverse relation, as GrailQA mixes both. The question text comes from the noun phrases in
``data/kg/phrases.json``; the gold answer from running the S-expression on the store. Every question is checked
before it is kept: the tool calls derived from its S-expression must reach the same answer.

The result is committed as ``data/kg/questions.json`` (AgentBench's dev.json shape, actions included); after
editing the graph or the phrases, regenerate it with ``python -m agentinstruct.builders.kg.generate``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

from agentinstruct.builders.base import Task

from .sexpr import Expr, iri, parse, select_query, to_text
from .store import OxigraphBackend, SparqlBackend
from .tasks import EMBEDDED_QUESTIONS, derive_actions, reference_actions, reverse_relation
from .tools import LITERAL_TYPES, KGSession, split_arguments

PHRASES = Path(__file__).parent / "data" / "phrases.json"
COUNTS = {"join1": 20, "join2": 20, "and": 20, "and2": 15, "count": 15, "argmax": 15, "argmin": 15}
SEED = 7
MAX_ANSWERS = 6  # keep questions whose answer a reader could check by hand


class _Graph:
    """The store's relation edges, names, types and attribute values, read once with SPARQL."""

    def __init__(self, backend: SparqlBackend) -> None:
        expected = iri("type.property.expected_type")
        literal = ", ".join(iri(t) for t in LITERAL_TYPES)
        self.range: dict[str, str] = {}
        self.attributes: set[str] = set()
        for row in backend.select(f"SELECT ?r ?t WHERE {{ ?r {expected} ?t }}"):
            if row["t"] in LITERAL_TYPES:
                self.attributes.add(row["r"])
            else:
                self.range[row["r"]] = row["t"]
        self.out: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        edges = f"SELECT ?s ?r ?o WHERE {{ ?s ?r ?o . ?r {expected} ?t FILTER(?t NOT IN ({literal})) }}"
        for row in backend.select(edges):
            self.out[row["s"]][row["r"]].add(row["o"])
        self.name = {r["e"]: r["n"] for r in backend.select(
            f"SELECT ?e ?n WHERE {{ ?e {iri('type.object.name')} ?n FILTER(STRSTARTS(STR(?e), "
            f"\"http://rdf.freebase.com/ns/m.\")) }}")}
        self.values: dict[tuple[str, str], str] = {}
        attrs = f"SELECT ?s ?a ?v WHERE {{ ?s ?a ?v . ?a {expected} ?t FILTER(?t IN ({literal})) }}"
        for row in backend.select(attrs):
            self.values[(row["s"], row["a"])] = row["v"]
        self.reverse = {r: reverse_relation(backend, r) for r in self.range}

    def hop(self, members: set[str], relation: str) -> set[str]:
        return set().union(*(self.out[m].get(relation, set()) for m in members)) if members else set()


def _sortable(value: str | None) -> float | str | None:
    """Numbers compare as numbers, dates (ISO, four-digit years) as text."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return value


def _candidates(g: _Graph, phrases: dict) -> dict[str, list[tuple[Expr, str, dict[str, str]]]]:
    """Every instance of every pattern with a small non-empty answer: (expression, question, entities)."""
    rel_phrase = phrases["relations"]
    one_hop = [(e, r, objs) for e in sorted(g.name) for r, objs in sorted(g.out[e].items())
               if r in rel_phrase and 1 <= len(objs) <= MAX_ANSWERS]
    two_hop = []
    for e, r1, mid in one_hop:
        if len(mid) > 4:
            continue
        for r2 in sorted(rel_phrase):
            ends = g.hop(mid, r2)
            if r2 != g.reverse.get(r1) and 1 <= len(ends) <= MAX_ANSWERS and ends != {e}:
                two_hop.append((e, r1, r2, ends))
    out: dict[str, list] = defaultdict(list)

    def np(rel: str, inner: str) -> str:
        return rel_phrase[rel]["phrase"].format(x=inner)

    def what(rel: str, text: str) -> str:
        return f"What are the {text}?" if rel_phrase[rel]["plural"] else f"What is {text}?"

    def one(e: str, r: str) -> Expr:
        return ("JOIN", ("R", r), e)

    for e, r, objs in one_hop:
        ent = {g.name[e]: e}
        out["join1"].append((("AND", g.range[r], one(e, r)), what(r, np(r, g.name[e])), ent))
        if rel_phrase[r]["plural"] and len(objs) >= 2:
            out["count"].append((("COUNT", ("AND", g.range[r], one(e, r))),
                                 f"How many {np(r, g.name[e])} are there?", ent))
            for attr in sorted(g.attributes):
                vals = [_sortable(g.values.get((o, attr))) for o in objs]
                if None in vals or attr not in phrases["attributes"]:
                    continue
                for op, pick in (("argmax", max), ("argmin", min)):
                    best = pick(vals)
                    if vals.count(best) == 1:
                        text = f"Among the {np(r, g.name[e])}, which one has {phrases['attributes'][attr][op[3:]]}?"
                        out[op].append(((op.upper(), ("AND", g.range[r], one(e, r)), attr), text, ent))
    for e, r1, r2, ends in two_hop:
        expr = ("AND", g.range[r2], ("JOIN", ("R", r2), one(e, r1)))
        out["join2"].append((expr, what(r2, np(r2, np(r1, g.name[e]))), {g.name[e]: e}))

    def both(a_rel: str, a_text: str, b_text: str) -> str:
        if rel_phrase[a_rel]["plural"]:
            return f"Which {a_text} are also {b_text}?"
        return f"What is both {a_text} and {b_text}?"

    for i, (e1, r1, a) in enumerate(one_hop):
        for e2, r2, b in one_hop[i + 1:]:
            if e1 != e2 and g.range[r1] == g.range[r2] and a != b and a & b:
                expr = ("AND", g.range[r1], ("AND", one(e1, r1), one(e2, r2)))
                text = both(r1, np(r1, g.name[e1]), np(r2, g.name[e2]))
                out["and"].append((expr, text, {g.name[e1]: e1, g.name[e2]: e2}))
    for e1, r1, r2, c in two_hop:
        for e2, r3, b in one_hop:
            if e1 != e2 and g.range[r2] == g.range[r3] and c != b and c & b:
                expr = ("AND", g.range[r2], ("AND", ("JOIN", ("R", r2), one(e1, r1)), one(e2, r3)))
                text = both(r2, np(r2, np(r1, g.name[e1])), np(r3, g.name[e2]))
                out["and2"].append((expr, text, {g.name[e1]: e1, g.name[e2]: e2}))
    return out


def _mix_directions(expr: Expr, g: _Graph, rng: random.Random) -> Expr:
    """Write some ``(JOIN (R r) X)`` as ``(JOIN r' X)`` with r's reverse relation (the same set)."""
    if isinstance(expr, str):
        return expr
    if expr[0] == "JOIN" and isinstance(expr[1], tuple) and g.reverse.get(expr[1][1]) and rng.random() < 0.5:
        return ("JOIN", g.reverse[expr[1][1]], _mix_directions(expr[2], g, rng))
    return tuple(_mix_directions(e, g, rng) if isinstance(e, tuple) else e for e in expr)


def generate(backend: SparqlBackend, phrases: dict, counts: dict[str, int] = COUNTS, seed: int = SEED) -> list[dict]:
    """Sample ``counts[pattern]`` questions per pattern (deterministic for a seed), in dev.json's shape.

    >>> qs = generate(OxigraphBackend.embedded(), json.loads(PHRASES.read_text()), {"count": 1})
    >>> qs[0]["question"].startswith("How many"), qs[0]["answer"][0]["answer_type"]
    (True, 'Value')
    """
    g = _Graph(backend)
    rng = random.Random(seed)
    candidates = _candidates(g, phrases)
    questions: list[dict] = []
    for pattern, n in counts.items():
        pool = sorted(candidates.get(pattern, []), key=lambda c: to_text(c[0]))
        for expr, text, entities in rng.sample(pool, min(n, len(pool))):
            expr = _mix_directions(expr, g, rng)
            questions.append(_question(backend, g, pattern, expr, text, entities))
    return questions


def _question(backend: SparqlBackend, g: _Graph, pattern: str, expr: Expr, text: str,
              entities: dict[str, str]) -> dict[str, Any]:
    sexpr = to_text(expr)
    rows = backend.select(select_query(parse(sexpr), 1000))
    if pattern == "count":
        answer = [{"answer_type": "Value", "answer_argument": rows[0]["count"]}]
    else:
        answer = [{"answer_type": "Entity", "answer_argument": r["x"], "entity_name": g.name.get(r["x"], r["x"])}
                  for r in sorted(rows, key=lambda r: r["x"])]
    item = {
        "qid": f"embedded_{pattern}_{hashlib.sha1(sexpr.encode()).hexdigest()[:10]}",
        "question": text[0].upper() + text[1:],
        "entities": entities,
        "s_expression": sexpr,
        "answer": answer,
        "actions": derive_actions(expr, g.reverse.get),
        "source": "agentinstruct-embedded",
    }
    _check_tools_agree(backend, item)
    return item


def _check_tools_agree(backend: SparqlBackend, item: dict) -> None:
    """Run the derived tool calls; they must give the S-expression's answer (else the graph's types are off)."""
    task = Task(item["qid"], item["question"], "package",
                {"entities": item["entities"], "actions": item["actions"], "s_expression": item["s_expression"]})
    session = KGSession(backend, item["entities"])
    *calls, final = reference_actions(task, backend)
    for action in calls:
        session.call(action.kind, split_arguments(action.kind, action.argument))
    got = session.answer(final.argument)
    gold = sorted(str(a["answer_argument"]) for a in item["answer"])
    if got != gold:
        raise AssertionError(f"{item['qid']}: tool calls give {got}, the S-expression gives {gold}")


def main(argv: list[str] | None = None) -> None:
    """Regenerate the embedded questions file from the embedded graph and phrases."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=EMBEDDED_QUESTIONS)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    questions = generate(OxigraphBackend.embedded(), json.loads(PHRASES.read_text(encoding="utf-8")), seed=args.seed)
    args.out.write_text(json.dumps(questions, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(questions)} questions to {args.out}")


if __name__ == "__main__":
    main()
