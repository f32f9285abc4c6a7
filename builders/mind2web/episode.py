"""One step's multiple-choice tournament, as AgentBench runs Mind2Web (``predict_single``), and its metrics.

The step's top-ranked candidates are shuffled (seeded by the task, so a rerun poses the same rounds) and taken
five at a time; each round is a fresh question about the page pruned around its five, and the element the agent
picks joins the back of the queue. Rounds go on while more than one candidate is queued; the last pick (with its
operation) is the step's prediction, none when the queue ran empty. As in AgentBench, a lone candidate left at the
end is never shown: a step of one candidate, or of six whose first round is answered A with the positive last,
predicts nothing.

Metrics, per step over the whole tournament, as AgentBench computes them: ``element_accuracy`` (the predicted
element is a positive within the top k), ``operation_f1`` (token F1 of the predicted ``OP value`` against the
gold), ``step_success`` (both). A step whose positive is not in the top k scores 0 whatever is answered; its
rounds are still posed (each one's right answer is A). A round is right (reward 1) when it picks a positive with
the gold operation and value (F1 1), or A where it holds no positive.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from agentinstruct.builders.base import Action, FormatError, Query, QueryEnvironment, Score, Task

from .dom import candidate_choices, parse_page, prune, tree_text
from .prompt import NONE_OF_THE_ABOVE, letter, operation, question, token_f1

ROUND_SIZE = 5
"""Candidates per round (AgentBench's ``num_candidates``); with A, the letters A-F its parser reads."""
METRIC = "round_correct"


@dataclass
class Round:
    """One posed round: its candidates in letter order, the right answer, and what was answered."""

    choices: list[str]
    reference: Action
    answer: Action | FormatError | None = None
    correct: bool = False


@dataclass
class Prediction:
    """The element and operation a tournament ends on (empty: none)."""

    element: str = ""
    operation: str = ""
    rounds: list[Round] = field(default_factory=list)


def step_metrics(element: str, predicted: str, positives: list[str], gold: str) -> dict[str, float]:
    """AgentBench's metrics of one step: ``positives`` are the positives within the top k (none: all 0).

    >>> step_metrics("7", "TYPE New York", ["7"], "TYPE New York")
    {'element_accuracy': 1.0, 'operation_f1': 1.0, 'step_success': 1.0}
    >>> step_metrics("7", "TYPE York", ["7"], "TYPE New York")
    {'element_accuracy': 1.0, 'operation_f1': 0.8, 'step_success': 0.0}
    >>> step_metrics("8", "CLICK", ["7"], "CLICK")
    {'element_accuracy': 0.0, 'operation_f1': 1.0, 'step_success': 0.0}
    >>> step_metrics("7", "CLICK", [], "CLICK")
    {'element_accuracy': 0.0, 'operation_f1': 0.0, 'step_success': 0.0}
    """
    if not positives:
        return {"element_accuracy": 0.0, "operation_f1": 0.0, "step_success": 0.0}
    accuracy = float(element in positives)
    f1 = token_f1(predicted, gold)
    return {"element_accuracy": accuracy, "operation_f1": round(f1, 6),
            "step_success": float(accuracy > 0 and f1 >= 1.0)}


def shuffled_candidates(task: Task, seed: int) -> list[str]:
    """The step's top-k candidates (positives first, as AgentBench lists them) in the seeded order of its rounds.

    >>> t = Task("a/u", "x", "package", {"candidates": ["1", "2", "3"]})
    >>> shuffled_candidates(t, 0) == shuffled_candidates(t, 0), sorted(shuffled_candidates(t, 0))
    (True, ['1', '2', '3'])
    """
    order = list(task.payload["candidates"])
    random.Random(f"{seed}:{task.task_id}").shuffle(order)
    return order


class Mind2webEnv(QueryEnvironment):
    """One step's rounds (see the module docstring).

    >>> page = ('<html backend_node_id="1"> <a backend_node_id="2"> <text>Deals</text> </a> <button '
    ...         'backend_node_id="3"> <text>Search</text> </button> </html>')
    >>> task = Task("a/u", "Search", "package", {"page": page, "candidates": ["3", "2"], "positives": ["3"],
    ...     "task": "Search", "previous_actions": [], "operation": {"op": "CLICK", "value": ""}})
    >>> env = Mind2webEnv(task)
    >>> q = env.next_query()
    >>> q.turns[0]["value"].splitlines()[-3:], q.reference
    (['A. None of the above', 'B. <a id=0> Deals </a>', 'C. <button id=1> Search </button>'], Action(kind='C', argument='CLICK'))
    >>> env.answer(q, q.reference); env.next_query() is None
    True
    >>> env.scores()[0].reward, env.metrics()
    (1.0, {'element_accuracy': 1.0, 'operation_f1': 1.0, 'step_success': 1.0})
    """

    def __init__(self, task: Task, seed: int = 0) -> None:
        self.task = task
        payload = task.payload
        self.tree = parse_page(payload["page"]) if payload["candidates"] else None  # no candidate: no round
        self.queue = shuffled_candidates(task, seed)
        self.positives: list[str] = list(payload["positives"])
        self.gold = operation(payload["operation"]["op"], payload["operation"]["value"])
        self.rounds: list[Round] = []
        self.last: tuple[str, str] | None = None

    def next_query(self) -> Query | None:
        if self.rounds and self.rounds[-1].answer is None:
            raise RuntimeError(f"mind2web task {self.task.task_id}: round {len(self.rounds)} has no answer yet")
        if len(self.queue) <= 1:
            return None
        ids, self.queue = self.queue[:ROUND_SIZE], self.queue[ROUND_SIZE:]
        pruned = prune(self.tree, ids)
        page, numbers = tree_text(pruned)
        choices = candidate_choices(pruned, numbers)
        hit = next((i for i, (c, _) in enumerate(choices) if c in self.positives), None)
        reference = Action(NONE_OF_THE_ABOVE) if hit is None else Action(letter(hit), self.gold)
        self.rounds.append(Round([c for c, _ in choices], reference))
        p = self.task.payload
        return Query([question(page, p["task"], p["previous_actions"], [text for _, text in choices])], reference)

    def answer(self, query: Query, action: Action | FormatError) -> None:
        if not self.rounds or self.rounds[-1].answer is not None:
            raise RuntimeError(f"mind2web task {self.task.task_id}: an answer with no question pending")
        current = self.rounds[-1]
        current.answer = action
        if isinstance(action, FormatError) or action.kind == NONE_OF_THE_ABOVE:
            current.correct = current.reference.kind == NONE_OF_THE_ABOVE and not isinstance(action, FormatError)
            return
        letters = [letter(i) for i in range(len(current.choices))]
        if action.kind not in letters:
            return  # a letter past the round's choices picks nothing (AgentBench drops it)
        element = current.choices[letters.index(action.kind)]
        self.queue.append(element)
        self.last = (element, action.argument)
        current.correct = element in self.positives and token_f1(action.argument, self.gold) >= 1.0

    def prediction(self) -> tuple[str, str]:
        """The step's predicted (element, operation): AgentBench's ``final_prediction``, ``("", "")`` for none."""
        if self.last is None or not self.queue:
            return "", ""
        return self.last

    def metrics(self) -> dict[str, float]:
        """The step's ``element_accuracy``, ``operation_f1`` and ``step_success`` (see the module docstring)."""
        element, predicted = self.prediction()
        return step_metrics(element, predicted, self.positives, self.gold)

    def scores(self) -> list[Score]:
        step = self.metrics()
        shared = {**step, "positive_in_top_k": float(bool(self.positives)), "rounds": float(len(self.rounds))}
        return [Score(reward=float(r.correct), success=r.correct, metric=METRIC,
                      components={**shared, "round": float(k), "round_has_positive":
                                  float(r.reference.kind != NONE_OF_THE_ABOVE)})
                for k, r in enumerate(self.rounds)]
