"""The ``webshop`` split: an agent searches a shop, opens products, picks options and buys; WebShop's reward.

Catalogue: the package's generated one (``generate.py``), or the user's WebShop files (``--products
items_shuffle.json --attributes items_ins_v2.json --instructions items_human_ins.json``), read as WebShop reads
them, with WebShop's goal order. Goals are split as WebShop splits its human goals: the first ``EVAL_GOALS`` of the
package's (WebShop's test and dev ranges, goals 0-1499, of the user's) are the evaluation part, which builds use
only with ``--goals eval``; the rest are the training part. Search: in-process BM25 (bm25s, Lucene's scoring) or
pyserini over a Lucene index. Episodes: WebShop's text pages, ``search[...]`` / ``click[...]``, 10 rounds
(AgentBench), reward from ``reward.get_reward``.

    agentinstruct build webshop --policy reference --out DIR
    agentinstruct build webshop --model M --base-url URL --out DIR
    agentinstruct build webshop --products items_shuffle.json --attributes items_ins_v2.json \\
        --instructions items_human_ins.json --tasks 1500:2000 --model M --out DIR
"""

from __future__ import annotations

import argparse
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentinstruct.builders.base import (EMBEDDED, Action, Builder, Environment, FormatError, Score, StepResult, Task,
                                         Turn)
from agentinstruct.builders.options import option

from .catalogue import Catalogue, load_catalogue
from .expert import shop_for
from .generate import DATA, FILES
from .prompt import prompt_turns
from .reward import TAGGER
from .search import Bm25sSearch, PyseriniSearch, SearchEngine
from .web import serve
from .shop import BACK_TO_SEARCH, END_BUTTON, NEXT_PAGE, PREV_PAGE, SUB_PAGES, Shop, ShopSession

EVAL_GOALS = 80
"""The package's goals 0-79 (after WebShop's shuffle) are its fixed evaluation part."""
WEBSHOP_EVAL_GOALS = 1500
"""WebShop's human goals 0-499 are its test range and 500-1499 its dev range; AgentInstruct trained on the rest."""

_ACTION = re.compile(r"Action\s*:\s*\**\s*((?:search|click)\[.+?\])", re.IGNORECASE | re.DOTALL)
_RANGE = re.compile(r"^(\d+)(?::(\d+))?$")
_FORMAT_HELP = ("Write 'Thought:' with your reasoning, then 'Action:' and one action, search[keywords] or "
                "click[label], e.g.\nThought:\nI think I should search for the product.\n\nAction:\n"
                "search[waterproof hiking boots]")


@dataclass(frozen=True)
class WebshopOptions:
    """The webshop split's environment options."""

    products: Path | None = option(None, "WebShop products file (items_shuffle*.json, .json.gz too) instead of "
                                   "the package's catalogue; needs --attributes and --instructions", metavar="FILE")
    attributes: Path | None = option(None, "WebShop attribute annotations (items_ins_v2*.json)", metavar="FILE")
    instructions: Path | None = option(None, "WebShop human instructions (items_human_ins.json)", metavar="FILE")
    search: str = option("bm25s", "search backend: bm25s (in-process, Lucene's BM25) or pyserini (a Lucene index, "
                         "needs Java 21)", choices=("bm25s", "pyserini"))
    index: Path | None = option(None, "the Lucene index directory for --search pyserini", metavar="DIR")
    goals: str = option("train", "which goals tasks come from: train, or eval (the package's goals 0-79, WebShop's "
                        "0-1499: its test and dev goals, never built from unless asked)", choices=("train", "eval"))


@functools.lru_cache(maxsize=1)
def embedded_catalogue() -> Catalogue:
    """The package's catalogue (read once per process)."""
    return load_catalogue(*(DATA / FILES[k] for k in ("products", "attributes", "instructions")), origin="package")


def _goal_action(action: Action) -> str:
    return f"{action.kind}[{action.argument}]"


class WebshopEnv(Environment):
    """One episode: a shopper session on the shared shop; the reward is computed when Buy Now is clicked."""

    def __init__(self, task: Task, shop: Shop) -> None:
        self.session: ShopSession = shop.session(task.payload["goal"])

    def reset(self) -> str | None:
        return None  # the first page is the prompt's last turn

    def step(self, action: Action) -> StepResult:
        observation, _, done = self.session.step(_goal_action(action))
        return StepResult(observation, done=done)

    def score(self, final: Action | None) -> Score:
        if not self.session.done:
            return Score(reward=0.0, success=False, metric="webshop_reward")
        info = self.session.reward_info
        return Score(reward=float(self.session.reward), success=self.session.reward == 1.0, metric="webshop_reward",
                     components={k: float(v) for k, v in info.items()})

    def close(self) -> None:
        """Nothing to release: the shop is shared and the session is dropped with the episode."""


class WebshopBuilder(Builder):
    """WebShop as AgentBench runs it, on a catalogue anyone can install (see the module docstring)."""

    split = "webshop"
    env_name = "webshop"
    env_version = f"webshop-1.0; tagger {TAGGER}"
    max_turns = 10
    card_description = (
        "A shop in WebShop's text format (a catalogue and goals in WebShop's files, its search and pages): "
        "`search[...]` and `click[...]` actions for at most 10 rounds; reward is WebShop's (attribute, option, "
        "type and price match of the bought item against the goal), its parts as components."
    )
    embedded_tasks = True
    Options = WebshopOptions
    observation_limit = 8000  # AgentBench shows whole pages; a results page of 10 listings runs past 800
    # The demo: 40 goals spread over the departments with template thoughts (about 0.05 s each). No SmolLM2: its
    # webshop episodes (every action a model call over pages of 1,000+ tokens) took 110 s of a 7m22s demo.
    demo_tasks = 40
    demo_model_tasks = 0

    def __init__(self, catalogue: Catalogue | None = None, search: str = "bm25s", index: Path | None = None,
                 goals: str = "train") -> None:
        self.catalogue = catalogue if catalogue is not None else embedded_catalogue()
        engine: SearchEngine
        if search == "pyserini":
            if index is None:
                raise ValueError("--search pyserini needs --index DIR (a Lucene index of the products)")
            engine = PyseriniSearch(index)
        elif search == "bm25s":
            engine = Bm25sSearch(self.catalogue.products)
        else:
            raise ValueError(f"unknown search backend {search!r}; expected bm25s or pyserini")
        self.shop = Shop(self.catalogue, engine)
        self.goals = goals

    @classmethod
    def from_options(cls, options: WebshopOptions, run: argparse.Namespace | None = None) -> "WebshopBuilder":
        """The catalogue the options name (the user's three WebShop files, or the package's) and the search."""
        files = (options.products, options.attributes, options.instructions)
        if any(files) and not all(files):
            raise ValueError("--products, --attributes and --instructions go together: WebShop's three files")
        catalogue = load_catalogue(*files, origin="files") if all(files) else None  # type: ignore[arg-type]
        return cls(catalogue, search=options.search, index=options.index, goals=options.goals)

    @property
    def backend(self) -> str:
        return self.shop.engine.name

    @property
    def eval_goals(self) -> int:
        """How many leading goals form the evaluation part of this catalogue."""
        return EVAL_GOALS if self.catalogue.origin == "package" else WEBSHOP_EVAL_GOALS

    def load_tasks(self, src: str) -> list[Task]:
        """``embedded`` (every goal of the chosen part: ``--goals train`` by default) or goal numbers ``N`` /
        ``START:END`` in WebShop's order, which must lie in the chosen part.

        >>> b = WebshopBuilder()
        >>> tasks = b.load_tasks("embedded")
        >>> len(tasks), tasks[0].task_id, tasks[0].source
        (320, 'goal-80', 'package')
        >>> b.load_tasks("3")
        Traceback (most recent call last):
        ...
        ValueError: webshop goal 3 is in the evaluation part (goals 0-79); builds use it only with --goals eval
        """
        total = len(self.catalogue.goals)
        parts = {"eval": range(0, self.eval_goals), "train": range(self.eval_goals, max(total, self.eval_goals))}
        if src == EMBEDDED:
            picked = range(parts[self.goals].start, min(parts[self.goals].stop, total))
        else:
            m = _RANGE.match(src.strip())
            if not m:
                raise ValueError(f"webshop tasks: {src!r} is neither 'embedded' nor a goal number N or range START:END")
            picked = range(int(m.group(1)), int(m.group(2)) if m.group(2) else int(m.group(1)) + 1)
            if not picked or picked.stop > total:
                raise ValueError(f"webshop tasks {src}: the catalogue has goals 0-{total - 1}")
            outside = next((n for n in (picked.start, picked.stop - 1) if n not in parts[self.goals]), None)
            if outside is not None:
                other = "train" if self.goals == "eval" else "eval"
                name = {"eval": "evaluation", "train": "training"}[other]
                raise ValueError(f"webshop goal {outside} is in the {name} part (goals {parts[other].start}-"
                                 f"{parts[other].stop - 1}); builds use it only with --goals {other}")
        source = "package" if self.catalogue.origin == "package" else "train_split"
        return [Task(f"goal-{n}", self.catalogue.goals[n]["instruction_text"], source,
                     {"goal_index": n, "goal": self.catalogue.goals[n]}) for n in picked]

    def open_env(self, task: Task) -> Environment:
        return WebshopEnv(task, self.shop)

    def prompt(self, task: Task) -> list[Turn]:
        return prompt_turns(self.shop.session(task.payload["goal"]).observation())

    def parse(self, reply: str) -> Action | FormatError:
        """The first ``Action: search[...]`` or ``Action: click[...]`` of a reply (AgentBench reads the first).

        >>> WebshopBuilder().parse("Thought:\\nI think so.\\n\\nAction:\\nclick[Buy Now]")
        Action(kind='click', argument='Buy Now')
        >>> WebshopBuilder().parse("I will buy it")
        FormatError(message="No action found. Write 'Thought:' ...
        """
        m = _ACTION.search(reply.split("Observation:")[0])
        if not m:
            return FormatError(f"No action found. {_FORMAT_HELP}")
        kind, _, rest = m.group(1).partition("[")
        return Action(kind.lower(), rest[:-1].strip())

    def reference_actions(self, task: Task) -> list[Action]:
        """The expert's actions, found by shopping in a private session on the same shop (``expert.py``): it reacts
        to the pages it sees, and the shop is deterministic, so the episode that replays them sees the same pages."""
        actions = shop_for(self.shop.session(task.payload["goal"]), task.payload["goal"])
        return [Action(name, argument) for name, argument in (_split(a) for a in actions)]

    def template_thought(self, task: Task, action: Action) -> str:
        arg = action.argument
        if action.kind == "search":
            return f"I think I should search for the product the instruction describes: {arg}."
        if arg == END_BUTTON:
            return ("I think this product and the options I chose fit the instruction, and the price is within "
                    "the budget, so I will buy it.")
        if arg == PREV_PAGE:
            return "I think I have seen what I needed on this page, so I will go back."
        if arg in SUB_PAGES:
            return (f"I think I should read the {arg.lower()} to check that this product has the attributes the "
                    "instruction asks for.")
        if arg in (NEXT_PAGE, BACK_TO_SEARCH):
            return f"I think I should click {arg} to look at other products."
        if re.fullmatch(r"B[0-9A-Z]{9}", arg):
            return f"I think {arg} looks like the product I need within the budget, so I will open it."
        return f"I think I should select {arg}, the option the instruction asks for."

    def web_server(self, host: str, port: int) -> Any:
        """The shop as HTML pages over the same engine, one session per goal of the embedded source."""
        return serve(self.shop, [t.payload["goal_index"] for t in self.load_tasks(EMBEDDED)], host=host, port=port)

    def render(self, thought: str, action: Action) -> str:
        return f"Thought:\n{thought}\n\nAction:\n{_goal_action(action)}"


def _split(action: str) -> tuple[str, str]:
    name, _, rest = action.partition("[")
    return name, rest[:-1]
