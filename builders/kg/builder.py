"""The ``kg`` split: an agent answers questions over a knowledge graph with AgentBench's seven tools.

Tasks: AgentBench/GrailQA question files (``knowledgegraph/dev.json`` shape), ``embedded`` (questions sampled
from the graph shipped with the package, less its evaluation part) or ``embedded-eval`` (that part: every fifth
embedded question, a fifth of each pattern, refused unless ``--eval-tasks`` is given). Backend: any SPARQL 1.1
endpoint (``--sparql-url``; a Freebase Virtuoso as AgentBench uses) or the embedded Oxigraph store (the package's
graph, or ``--graph`` files). Reward: F1 of the answer set against the gold answers (exact match recorded as a
component and as ``success``), 15 turns.

    agentinstruct build kg --tasks embedded --policy reference --out DIR
    agentinstruct build kg --tasks dev.json --sparql-url http://localhost:3001/sparql --model M --out DIR
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

from agentinstruct.builders.base import (EMBEDDED, Action, Builder, Environment, FormatError, Score, StepResult, Task,
                                         Turn, refuse_evaluation_part)
from agentinstruct.builders.options import option

from .prompt import prompt_turns
from .store import HttpSparqlBackend, OxigraphBackend, SparqlBackend
from .tasks import EMBEDDED_QUESTIONS, load_questions, reference_actions
from .tools import TOOLS, KGSession, ToolError, split_arguments

EMBEDDED_EVAL = "embedded-eval"
EVAL_EVERY = 5
"""The embedded questions at positions 4, 9, 14, ... of ``data/questions.json`` (24 of 120; the file lists its
patterns in blocks of multiples of 5, so a fifth of each) are the evaluation part: ``embedded`` leaves them out."""

_FINAL = re.compile(r"(?:Final|Find) Answer\s*:\s*(.*)", re.IGNORECASE)
_FINAL_VARIABLE = re.compile(r"^(?:variable\s+)?#(\d+)\b", re.IGNORECASE)
_ACTION_LINE = re.compile(r"^\s*\**Action\**\s*\d*\s*:\s*(.*)$", re.IGNORECASE)
_CALL = re.compile(r"(\w+)\s*\((.*)\)")
_FORMAT_HELP = ("Write 'Thought: ...' and then one line 'Action: tool(arguments)', e.g. Action: get_relations(#0), "
                "or 'Final Answer: #id' when a variable holds the answer.")


def f1_score(predicted: set[str], gold: set[str]) -> dict[str, float]:
    """AgentBench's kg scoring: F1 of the answer sets (0 without a correct member) and exact match.

    >>> f1_score({"a", "b"}, {"a", "c", "d"})["f1"]
    0.4
    >>> f1_score({"a"}, {"a"})
    {'f1': 1.0, 'precision': 1.0, 'recall': 1.0, 'exact_match': 1.0}
    """
    hits = len(predicted & gold)
    precision = hits / len(predicted) if predicted else 0.0
    recall = hits / len(gold) if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {"f1": f1, "precision": precision, "recall": recall, "exact_match": float(predicted == gold)}


class KgEnv(Environment):
    """One episode: a tool session over the shared backend; the final answer is computed when it is given."""

    def __init__(self, task: Task, backend: SparqlBackend, max_results: int) -> None:
        self.task = task
        self.session = KGSession(backend, task.payload["entities"], max_results)
        self.predicted: list[str] | None = None

    def reset(self) -> str | None:
        return None

    def step(self, action: Action) -> StepResult:
        if action.kind == "answer":
            try:
                self.predicted = self.session.answer(action.argument)
            except ToolError as e:
                return StepResult(f"Final Answer: {action.argument} cannot be used: {e}")
            return StepResult(f"Answer {action.argument}: {len(self.predicted)} value(s).", done=True)
        try:
            return StepResult(self.session.call(action.kind, split_arguments(action.kind, action.argument)))
        except ToolError as e:
            return StepResult(f"{action.kind}({action.argument}) cannot be executed: {e}")

    def score(self, final: Action | None) -> Score:
        gold = set(self.task.payload["answer"])
        predicted = set(self.predicted) if self.predicted is not None else set()
        parts = f1_score(predicted, gold)
        return Score(reward=parts["f1"], success=parts["exact_match"] == 1.0, metric="f1", components=parts)

    def close(self) -> None:
        """Nothing to release: the backend is shared and outlives the episode."""


@dataclass(frozen=True)
class KgOptions:
    """The kg split's environment options."""

    sparql_url: str | None = option(None, "SPARQL 1.1 endpoint holding Freebase, e.g. AgentBench's Virtuoso "
                                    "http://HOST:3001/sparql (default: the embedded Oxigraph store)", metavar="URL")
    graph: list[Path] = option(list, "N-Triples/Turtle file for the embedded store instead of the package's graph "
                               "(repeatable; Freebase conventions: ids under http://rdf.freebase.com/ns/)",
                               metavar="FILE")
    query_timeout: float = option(30.0, "seconds per SPARQL query", metavar="S")
    max_results: int = option(1000, "most rows a query returns: relations listed, answers computed", metavar="N")
    eval_tasks: bool = option(False, "allow --tasks embedded-eval (the embedded questions held out as the evaluation "
                              "part); builds of training data refuse it otherwise")


class KgBuilder(Builder):
    """AgentBench's knowledge-graph task over SPARQL (see the module docstring)."""

    split = "kg"
    env_name = "knowledge-graph"
    env_version = "1.0"
    max_turns = 15
    card_description = (
        "A knowledge graph behind AgentBench's seven tools (`get_relations`, `get_neighbors`, ...) over variables "
        "`#n`, at most 15 turns; reward is the F1 of the final answer's entities against the gold ones."
    )
    embedded_tasks = True
    Options = KgOptions
    observation_limit = 16_000  # relation lists of big Freebase entities run long; AgentBench does not cut them

    def __init__(self, store: SparqlBackend | None = None, max_results: int = 1000, eval_tasks: bool = False) -> None:
        self.store = store if store is not None else OxigraphBackend.embedded()
        self.max_results = max_results
        self.eval_tasks = eval_tasks

    @classmethod
    def from_options(cls, options: "KgOptions", run: argparse.Namespace | None = None) -> "KgBuilder":
        """The store the options name: an endpoint, the user's graph files, or the embedded graph."""
        if options.sparql_url and options.graph:
            raise ValueError("--sparql-url and --graph exclude each other: query an endpoint or load files")
        store: SparqlBackend
        if options.sparql_url:
            store = HttpSparqlBackend(options.sparql_url, timeout_s=options.query_timeout)
        elif options.graph:
            store = OxigraphBackend(options.graph, timeout_s=options.query_timeout)
        else:
            store = OxigraphBackend.embedded(timeout_s=options.query_timeout)
        return cls(store, max_results=options.max_results, eval_tasks=options.eval_tasks)

    @property
    def backend(self) -> str:
        return self.store.name

    def load_tasks(self, src: str) -> list[Task]:
        """``embedded``, ``embedded-eval`` (the questions ``embedded`` holds out; refused unless the builder has
        ``eval_tasks``) or a question file in AgentBench's dev.json shape.

        >>> builder = KgBuilder(eval_tasks=True)
        >>> train, held_out = builder.load_tasks("embedded"), builder.load_tasks("embedded-eval")
        >>> len(train), len(held_out), {t.task_id for t in train} & {t.task_id for t in held_out}
        (96, 24, set())
        >>> KgBuilder().load_tasks("embedded-eval")
        Traceback (most recent call last):
        ...
        ValueError: kg tasks embedded-eval: ... training data is not built from them (give --eval-tasks to run them anyway)
        """
        if src == EMBEDDED_EVAL and not self.eval_tasks:
            refuse_evaluation_part(self.split, src, f"its questions are the ones `{EMBEDDED}` holds out, the kg "
                                   "evaluation part")
        if src in (EMBEDDED, EMBEDDED_EVAL):
            questions = load_questions(EMBEDDED_QUESTIONS, "package")
            held_out = src == EMBEDDED_EVAL
            return [t for i, t in enumerate(questions) if (i % EVAL_EVERY == EVAL_EVERY - 1) == held_out]
        path = Path(src)
        if not path.is_file():
            raise ValueError(f"kg tasks: {src} is neither '{EMBEDDED}', '{EMBEDDED_EVAL}' nor a question file")
        return load_questions(path, "train_split")

    def open_env(self, task: Task) -> Environment:
        return KgEnv(task, self.store, self.max_results)

    def prompt(self, task: Task) -> list[Turn]:
        return prompt_turns(task.payload["question"], list(task.payload["entities"]))

    def parse(self, reply: str) -> Action | FormatError:
        """A reply's final answer or tool call (text after an invented "Observation:" is ignored).

        >>> KgBuilder().parse("Thought: x\\nAction: get_neighbors(Ilse Marrow,  film.director.films_directed)")
        Action(kind='get_neighbors', argument='Ilse Marrow, film.director.films_directed')
        >>> KgBuilder().parse("Thought: done\\nFinal Answer: #3")
        Action(kind='answer', argument='#3')
        """
        text = reply.split("Observation:")[0].replace("\\_", "_")
        final = _FINAL.search(text)
        if final:
            m = _FINAL_VARIABLE.match(final.group(1).strip().strip("`*"))
            if not m:
                return FormatError("The final answer must name a variable, e.g. Final Answer: #3.")
            return Action("answer", f"#{m.group(1)}")
        for line in text.splitlines():
            action = _ACTION_LINE.match(line)
            if not action:
                continue
            call = _CALL.search(action.group(1).replace("`", ""))
            if not call:
                return FormatError(f"No tool call after 'Action:'. {_FORMAT_HELP}")
            tool = call.group(1)
            if tool not in TOOLS:
                return FormatError(f"{tool} is not a tool; the tools are {', '.join(TOOLS)}.")
            try:
                args = split_arguments(tool, call.group(2))
            except ToolError as e:
                return FormatError(f"{e}.")
            return Action(tool, ", ".join(args))
        return FormatError(f"No action found. {_FORMAT_HELP}")

    def is_final(self, action: Action) -> bool:
        # The answer goes through step(): a variable that does not exist is an observation, and the agent goes on.
        return False

    def reference_actions(self, task: Task) -> list[Action]:
        return reference_actions(task, self.store)

    def template_thought(self, task: Task, action: Action) -> str:
        if action.kind == "answer":
            return f"{action.argument} holds what the question asks for, so it is the final answer."
        args = split_arguments(action.kind, action.argument)
        first, last = args[0], args[-1]
        templates = {
            "get_relations": f"I will look at the relations of {first} to find one that leads toward the answer.",
            "get_neighbors": f"Following {last} from {first} gives the entities I need next.",
            "intersection": f"The answer must meet both conditions, so I take the entities in both {first} and "
                            f"{last}.",
            "get_attributes": f"To compare the entities of {first}, I need their numerical attributes.",
            "argmax": f"The question asks for the largest {last} among {first}.",
            "argmin": f"The question asks for the smallest {last} among {first}.",
            "count": f"The question asks how many, so I count the entities of {first}.",
        }
        return templates[action.kind]

    def render(self, thought: str, action: Action) -> str:
        if action.kind == "answer":
            return f"Thought: {thought}\nFinal Answer: {action.argument}"
        return f"Thought: {thought}\nAction: {action.kind}({action.argument})"
