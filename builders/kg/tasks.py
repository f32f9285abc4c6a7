"""kg tasks: AgentBench/GrailQA question files, and reference tool sequences derived from S-expressions.

A question file is a JSON list in AgentBench's ``knowledgegraph/dev.json`` shape: ``qid``, ``question``,
``entities`` (name -> Freebase id, the names the agent may pass to the tools), ``s_expression``, ``answer`` (a list
of ``{"answer_type", "answer_argument", "entity_name"}``) and optionally ``actions`` (the tool calls, ids in place
of names, as AgentBench lists them). The embedded questions use the same shape. Files are read by
``builders.taskfile`` (so a JSON Lines file of questions works too), and a bad field is a ``TaskFileError`` naming
the file, line, question and field.

Task derivation (``--policy reference``) turns a question into the tool calls that answer it: its ``actions`` when
the file has them, else calls derived from the S-expression, innermost first, as AgentBench's own lists go:
``(JOIN (R r) X)`` -> get_relations(X), get_neighbors(X, r); ``(JOIN r X)`` the same with r's reverse relation;
``(AND A B)`` -> intersection; ``(COUNT X)`` -> count; ``(ARGMAX X a)`` -> get_attributes(X), argmax(X, a). A class
in an AND is left to the relation's expected type, which is how the tools type their variables.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from agentinstruct.builders.base import Action, Task
from agentinstruct.builders.taskfile import Entry, read_task_file

from .sexpr import Expr, SExprError, iri, parse
from .store import SparqlBackend
from .tools import TOOLS, ToolError, split_arguments

EMBEDDED_QUESTIONS = Path(__file__).parent / "data" / "questions.json"

# Tools whose result is a new variable (the others list names).
MAKES_VARIABLE = ("get_neighbors", "intersection", "argmax", "argmin", "count")

_CALL = re.compile(r"^\s*(\w+)\s*\((.*)\)\s*$", re.DOTALL)


class DerivationError(ValueError):
    """An S-expression that the seven tools cannot express (e.g. a relation without a reverse relation)."""


def load_questions(path: Path, source: str) -> list[Task]:
    """Tasks from a question file, in file order, of instruction source ``source`` (``package`` for the embedded
    questions, ``train_split`` for a benchmark's); a bad entry is a ``TaskFileError`` naming file, line and field.

    >>> tasks = load_questions(EMBEDDED_QUESTIONS, "package")
    >>> tasks[0].payload["s_expression"].startswith("("), tasks[0].source
    (True, 'package')
    """
    tasks: list[Task] = []
    seen: set[str] = set()
    for entry in read_task_file(path, source):
        task = _task(entry)
        if task.task_id in seen:  # ids key the journal: a repeated one would make two questions one episode
            raise entry.error("qid", f"{task.task_id!r} appears twice")
        seen.add(task.task_id)
        tasks.append(task)
    return tasks


def _task(entry: Entry) -> Task:
    item = entry.item
    if not isinstance(item, dict):
        raise entry.error(None, f"expected an object, got {type(item).__name__}")
    qid = item.get("qid", f"{entry.path.stem}-{entry.index}")
    question = item.get("question")
    if not isinstance(question, str) or not question.strip():
        raise entry.error("question", "must be a non-empty string")
    entities = item.get("entities", {})
    if not isinstance(entities, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in entities.items()):
        raise entry.error("entities", "must be an object of entity name -> Freebase id")
    answer = item.get("answer")
    if not isinstance(answer, list) or not answer or not all(
        isinstance(a, dict) and isinstance(a.get("answer_argument"), (str, int, float)) for a in answer
    ):
        raise entry.error("answer", "must be a non-empty list of objects with 'answer_argument'")
    sexpr = item.get("s_expression")
    actions = item.get("actions")
    if sexpr is not None and not isinstance(sexpr, str):
        raise entry.error("s_expression", "must be a string")
    if actions is not None and not (isinstance(actions, list) and all(isinstance(a, str) for a in actions)):
        raise entry.error("actions", "must be a list of tool calls like 'get_relations(m.0abc)'")
    if sexpr is None and not actions:
        raise entry.error(None, "needs 's_expression' or 'actions' (the reference solution)")
    payload = {
        "question": question.strip(),
        "entities": entities,
        "answer": [str(a["answer_argument"]) for a in answer],
        "answer_names": [str(a.get("entity_name") or a["answer_argument"]) for a in answer],
        "s_expression": sexpr,
        "actions": actions,
    }
    return Task(task_id=str(qid), instruction=question.strip(), source=entry.source, payload=payload)


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
