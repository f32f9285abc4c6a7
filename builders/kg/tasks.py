"""kg tasks: AgentBench/GrailQA question files, and reference tool sequences derived from S-expressions.

A question file is a JSON list in AgentBench's ``knowledgegraph/dev.json`` shape: ``qid``, ``question``,
``entities`` (name -> Freebase id, the names the agent may pass to the tools), ``s_expression``, ``answer`` (a list
of ``{"answer_type", "answer_argument", "entity_name"}``) and optionally ``actions`` (the tool calls, ids in place
of names, as AgentBench lists them). The embedded questions use the same shape.

Task derivation (``--policy reference``) turns a question into the tool calls that answer it: its ``actions`` when
the file has them, else calls derived from the S-expression, innermost first, as AgentBench's own lists go:
``(JOIN (R r) X)`` -> get_relations(X), get_neighbors(X, r); ``(JOIN r X)`` the same with r's reverse relation;
``(AND A B)`` -> intersection; ``(COUNT X)`` -> count; ``(ARGMAX X a)`` -> get_attributes(X), argmax(X, a). A class
in an AND is left to the relation's expected type, which is how the tools type their variables.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

from agentinstruct.builders.base import Action, Task

from .sexpr import Expr, SExprError, iri, parse
from .store import SparqlBackend
from .tools import TOOLS, ToolError, split_arguments

EMBEDDED_QUESTIONS = Path(__file__).parent / "data" / "questions.json"

# Tools whose result is a new variable (the others list names).
MAKES_VARIABLE = ("get_neighbors", "intersection", "argmax", "argmin", "count")

_CALL = re.compile(r"^\s*(\w+)\s*\((.*)\)\s*$", re.DOTALL)


class DerivationError(ValueError):
    """An S-expression that the seven tools cannot express (e.g. a relation without a reverse relation)."""


def load_questions(path: Path) -> list[Task]:
    """Tasks from a question file, in file order; a bad entry is a ValueError naming the file, entry and field.

    >>> tasks = load_questions(EMBEDDED_QUESTIONS)
    >>> tasks[0].payload["s_expression"].startswith("(")
    True
    """
    try:
        items = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"{path}: cannot read: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected a JSON list of questions (AgentBench knowledgegraph/dev.json shape)")
    tasks: list[Task] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        task = _task(path, i, item)
        if task.task_id in seen:
            raise ValueError(f"{path}: question {i}: qid {task.task_id!r} appears twice")
        seen.add(task.task_id)
        tasks.append(task)
    return tasks


def _task(path: Path, i: int, item: Any) -> Task:
    where = f"{path}: question {i}"
    if not isinstance(item, dict):
        raise ValueError(f"{where}: expected an object, got {type(item).__name__}")
    qid = item.get("qid", f"{Path(path).stem}-{i}")
    where = f"{path}: question {i} (qid {qid})"
    question = item.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"{where}: field 'question' must be a non-empty string")
    entities = item.get("entities", {})
    if not isinstance(entities, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in entities.items()):
        raise ValueError(f"{where}: field 'entities' must be an object of entity name -> Freebase id")
    answer = item.get("answer")
    if not isinstance(answer, list) or not answer or not all(
        isinstance(a, dict) and isinstance(a.get("answer_argument"), (str, int, float)) for a in answer
    ):
        raise ValueError(f"{where}: field 'answer' must be a non-empty list of objects with 'answer_argument'")
    sexpr = item.get("s_expression")
    actions = item.get("actions")
    if sexpr is not None and not isinstance(sexpr, str):
        raise ValueError(f"{where}: field 's_expression' must be a string")
    if actions is not None and not (isinstance(actions, list) and all(isinstance(a, str) for a in actions)):
        raise ValueError(f"{where}: field 'actions' must be a list of tool calls like 'get_relations(m.0abc)'")
    if sexpr is None and not actions:
        raise ValueError(f"{where}: needs 's_expression' or 'actions' (the reference solution)")
    payload = {
        "question": question.strip(),
        "entities": entities,
        "answer": [str(a["answer_argument"]) for a in answer],
        "answer_names": [str(a.get("entity_name") or a["answer_argument"]) for a in answer],
        "s_expression": sexpr,
        "actions": actions,
    }
    return Task(task_id=str(qid), instruction=question.strip(), source="train_split", payload=payload)


def reverse_relation(backend: SparqlBackend, relation: str) -> str | None:
    """The relation going the other way (Freebase reverse_property / master_property), or None.

    >>> from agentinstruct.builders.kg.store import OxigraphBackend
    >>> reverse_relation(OxigraphBackend.embedded(), "film.film.directed_by")
    'film.director.films_directed'
    """
    rel, rev, master = iri(relation), iri("type.property.reverse_property"), iri("type.property.master_property")
    rows = backend.select(
        f"SELECT ?r WHERE {{ {{ {rel} {rev} ?r }} UNION {{ ?r {rev} {rel} }} UNION {{ {rel} {master} ?r }} "
        f"UNION {{ ?r {master} {rel} }} }} LIMIT 1"
    )
    return rows[0]["r"] if rows else None


def derive_actions(expr: Expr, reverse_of: Callable[[str], str | None]) -> list[str]:
    """Tool calls (AgentBench's ``actions`` shape: ids, no spaces) that compute ``expr``; the last call's variable
    is the answer.

    >>> derive_actions(parse("(AND film.film (JOIN film.film.directed_by m.0ai020))"),
    ...                lambda r: {"film.film.directed_by": "film.director.films_directed"}.get(r))
    ['get_relations(m.0ai020)', 'get_neighbors(m.0ai020,film.director.films_directed)']
    """
    actions: list[str] = []
    made = 0

    def new(call: str) -> str:
        nonlocal made
        actions.append(call)
        made += 1
        return f"#{made - 1}"

    def walk(e: Expr) -> str:
        if isinstance(e, str):
            return e
        op = e[0]
        if op == "JOIN":
            rel, sub = e[1], e[2]
            if isinstance(rel, tuple):
                forward = rel[1]
            else:
                forward = reverse_of(rel)
                if forward is None:
                    raise DerivationError(f"{rel} has no reverse relation, so get_neighbors cannot follow it")
            x = walk(sub)
            actions.append(f"get_relations({x})")
            return new(f"get_neighbors({x},{forward})")
        if op == "AND":
            parts = [p for p in e[1:] if not isinstance(p, str)]  # a class atom is the relations' expected type
            refs = [walk(p) for p in parts]
            if len(refs) == 1:
                return refs[0]
            if not all(r.startswith("#") for r in refs):
                raise DerivationError("intersection needs two variables, not an entity")
            return new(f"intersection({refs[0]},{refs[1]})")
        if op == "COUNT":
            return new(f"count({walk(e[1])})")
        if op in ("ARGMAX", "ARGMIN"):
            x = walk(e[1])
            if not x.startswith("#"):
                raise DerivationError(f"{op} needs a variable, not an entity")
            actions.append(f"get_attributes({x})")
            return new(f"{op.lower()}({x},{e[2]})")
        raise DerivationError(f"no tool for {op}")

    if not walk(expr).startswith("#"):
        raise DerivationError("the expression is a bare entity; there is nothing to compute")
    return actions


def reference_actions(task: Task, backend: SparqlBackend) -> list[Action]:
    """The task's reference solution as kg actions with entity names (as the agent writes them) and the final
    answer; ValueError when the question has no usable solution."""
    payload = task.payload
    calls = payload.get("actions")
    if not calls:
        try:
            calls = derive_actions(parse(payload["s_expression"]), lambda r: reverse_relation(backend, r))
        except SExprError as e:
            raise ValueError(f"kg task {task.task_id}: S-expression not supported: {e}") from None
    names = {v: k for k, v in payload["entities"].items()}
    actions: list[Action] = []
    made = 0
    for call in calls:
        m = _CALL.match(call)
        if not m or m.group(1) not in TOOLS:
            raise ValueError(f"kg task {task.task_id}: action {call!r} is not a call of one of the tools")
        tool = m.group(1)
        try:
            args = split_arguments(tool, m.group(2))
        except ToolError as e:
            raise ValueError(f"kg task {task.task_id}: action {call!r}: {e}") from None
        args = [names.get(a, a) for a in args]
        actions.append(Action(tool, ", ".join(args)))
        made += tool in MAKES_VARIABLE
    if not made:
        raise ValueError(f"kg task {task.task_id}: its actions make no variable to answer with")
    actions.append(Action("answer", f"#{made - 1}"))
    return actions
