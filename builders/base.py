"""What a split builder states, as the collection engine sees it.

A builder (one module per split in ``builders/``) says where tasks come from,
how its environment starts and stops, the prompt and one-shot, how a reply
is parsed into an action, the reward, the bar for keeping a trajectory and
the maximum number of turns. The engine (``agentinstruct.collection.runner`` and
``agentinstruct.collection.collect``) does everything else: model calls, the ReAct
loop, journals, resume, filters and writing the dataset dir.

Environments are synchronous (subprocesses, database connections); the
engine runs each episode's environment calls in a worker thread so many
episodes proceed at once.
"""

from __future__ import annotations

import argparse
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NoReturn

from agentinstruct.builders.options import NoOptions, add_option_arguments, read_options
from agentinstruct.schemas import INSTRUCTION_SOURCES

Turn = dict[str, Any]

TASK_SOURCES: tuple[str, ...] = tuple(s for s in INSTRUCTION_SOURCES if s != "imported")
"""The instruction sources a task may declare: the record contract's, less ``imported`` (rows with no episode)."""

EMBEDDED = "embedded"
"""The task source naming the tasks a split ships with the package (``load_tasks(EMBEDDED)``)."""


def opening_turns(instructions: str, acknowledgement: str, example: list[tuple[str, str]], task: str) -> list[Turn]:
    """A prompt in THUDM's shape: the instructions, the acknowledgement, the one-shot example's (human, gpt) pairs
    (gpt turns not trained: ``loss`` False), then the human turn that poses the task.

    Example:
        >>> [(t["from"], t["loss"]) for t in opening_turns("Do it.", "OK", [("q", "a")], "task")]
        [('human', None), ('gpt', False), ('human', None), ('gpt', False), ('human', None)]
    """
    turns: list[Turn] = [{"from": "human", "value": instructions, "loss": None},
                         {"from": "gpt", "value": acknowledgement, "loss": False}]
    for human, gpt in example:
        turns += [{"from": "human", "value": human, "loss": None}, {"from": "gpt", "value": gpt, "loss": False}]
    turns.append({"from": "human", "value": task, "loss": None})
    return turns


class NoSelfInstruct(ValueError):
    """The split has no self-instruct task source (its builder does not implement ``self_instruct``)."""


class NoReferenceSolution(ValueError):
    """The task has no reference solution that reaches its answer through the environment's observations.

    ``--policy reference`` derives nothing for such a task: the build journals it as skipped with this message as
    the reason and counts it (it is not an error, so a resumed build does not run it again).
    """


def refuse_evaluation_part(split: str, src: str, what: str) -> NoReturn:
    """Refuse a task source that is (or holds) the split's evaluation part: training data is not built from it.
    ``what`` says what the source is; a builder raises this unless its ``eval_tasks`` option is set (``--eval-tasks``,
    which ``agentinstruct evaluate`` gives).

    Example:
        >>> refuse_evaluation_part("kg", "embedded-eval", "its questions are the kg evaluation part")
        Traceback (most recent call last):
        ...
        ValueError: kg tasks embedded-eval: its questions are the kg evaluation part; training data is not built from them (give --eval-tasks to run them anyway)
    """
    raise ValueError(f"{split} tasks {src}: {what}; training data is not built from them (give --eval-tasks to run "
                     "them anyway)")


@dataclass(frozen=True)
class Task:
    """One task: its id in its source, the instruction text, how the instruction was made, and builder data.

    ``payload`` must be JSON-serialisable: journals store it so a resumed build
    replays exactly the same tasks.
    """

    task_id: str
    instruction: str
    source: str  # one of TASK_SOURCES
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Action:
    """A parsed agent action: a builder-defined ``kind`` (bash, answer, finish, sql, ...) and its argument."""

    kind: str
    argument: str = ""


@dataclass(frozen=True)
class FormatError:
    """A reply whose action could not be parsed; ``message`` goes back to the agent as the observation."""

    message: str


@dataclass(frozen=True)
class StepResult:
    """What the environment answers to an action: the next observation and whether the episode is over."""

    observation: str
    done: bool = False


@dataclass(frozen=True)
class Score:
    """The environment's verdict on a finished episode."""

    reward: float
    success: bool
    metric: str
    components: dict[str, float] = field(default_factory=dict)


class Environment(ABC):
    """One episode's live environment. Used as a context manager: ``close`` always runs."""

    @abstractmethod
    def reset(self) -> str | None:
        """Prepare the environment for the task; return text to append to the task turn, or None. The text goes
        on a new line, or straight after the turn's text when that ends with whitespace (alfworld's "Here is your
        task. " continues with the room the game describes)."""

    @abstractmethod
    def step(self, action: Action) -> StepResult:
        """Carry out one action. Errors of the action (bad SQL, failing command) are observations, not exceptions."""

    @abstractmethod
    def score(self, final: Action | None) -> Score:
        """Score the episode; ``final`` is the last action (e.g. the answer), None if the agent never finished."""

    @abstractmethod
    def close(self) -> None:
        """Release everything the episode holds (processes, databases, temp dirs)."""

    def __enter__(self) -> "Environment":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Query:
    """One question of a query task: a fresh conversation (``turns``, ending with the human turn that asks it)
    answered by one gpt turn, and the answer the reference policy gives (``reference``)."""

    turns: list[Turn]
    reference: Action


class QueryEnvironment(ABC):
    """A query task's live environment: it poses questions one at a time, each answered in one reply, and which
    comes next may depend on the answers so far (Mind2Web's rounds: the winners of a round meet in the next).
    Used as a context manager: ``close`` always runs."""

    @abstractmethod
    def next_query(self) -> Query | None:
        """The next question, or None when the task is decided."""

    @abstractmethod
    def answer(self, query: Query, action: Action | FormatError) -> None:
        """Take the reply to ``query`` (a reply that did not parse arrives as its ``FormatError``)."""

    @abstractmethod
    def scores(self) -> list[Score]:
        """One score per question posed, in order: each question's verdict, with whatever the whole task's
        outcome contributes (Mind2Web's step metrics) as components."""

    def close(self) -> None:
        """Release what the task holds; nothing by default."""

    def __enter__(self) -> "QueryEnvironment":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Builder(ABC):
    """A split's builder. Subclasses set the class attributes and implement the methods."""

    split: ClassVar[str]
    env_name: ClassVar[str]
    env_version: ClassVar[str]
    max_turns: ClassVar[int]
    reward_bar: ClassVar[float] = 1.0
    """Keep a trajectory when its reward is at least this."""
    observation_limit: ClassVar[int] = 800
    """Observations longer than this many characters are cut, with a notice (AgentBench cuts at 800)."""

    card_description: ClassVar[str] = ""
    """One paragraph for the dataset card's "How each split was built": how the split's episodes are posed and
    scored (the card lists it for every split in the dir that has one)."""

    embedded_tasks: ClassVar[bool] = False
    """Whether ``load_tasks(EMBEDDED)`` gives tasks shipped with the package: then ``--tasks`` defaults to them
    (``agentinstruct build SPLIT`` needs no task file) and ``agentinstruct demo`` builds the split."""

    demo_tasks: ClassVar[int | None] = None
    """How many of the embedded tasks ``agentinstruct demo`` builds, spread over them (None: all): a split whose
    episodes take seconds of engine time each keeps the demo within minutes."""
    demo_model_tasks: ClassVar[int | None] = None
    """At most how many of the demo's tasks get SmolLM2's thoughts, and SmolLM2 as the agent (None: the demo's
    defaults); a split with long episodes lowers it, as each action is a model call."""

    env_in_thread: ClassVar[bool] = True
    """Whether the environment's calls (``open_env``, ``reset``, ``step``, ``score``, ``close``, and the
    reference solution) run in worker threads. They must when they wait on something (a sandbox, a database, a
    browser), so the event loop runs the other episodes meanwhile. A builder whose calls are short pure-Python
    computations sets False and they run on the event loop: under the GIL a thread gains them nothing, and each
    hand-off to one and back cost 2-3 ms at 64 episodes in flight and 9-15 ms at 256 (``bench_collect.py``)."""

    Options: ClassVar[type] = NoOptions
    """The builder's environment options: a dataclass of ``option(...)`` fields (``builders.options``). They are
    the split's flags of ``agentinstruct build SPLIT``, keys of its build file, and part of the journal header."""
    options: Any = None
    """The ``Options`` this builder was made from (``from_options``); None for one constructed directly."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add a flag per field of ``Options`` to ``agentinstruct build SPLIT`` (``command_timeout`` is
        ``--command-timeout``)."""
        add_option_arguments(parser, cls.Options, f"{cls.split} split")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Builder":
        """The builder for parsed CLI options: its ``Options`` read from them, then ``from_options``."""
        options = read_options(cls.Options, args)
        builder = cls.from_options(options, args)
        builder.options = options
        return builder

    @classmethod
    def from_options(cls, options: Any, run: argparse.Namespace | None = None) -> "Builder":
        """Construct from the builder's ``Options``; ``run`` holds the rest of the build's options (the model,
        ``--out``), which a self-instruct task source needs."""
        return cls()

    @property
    @abstractmethod
    def backend(self) -> str:
        """Name of the environment backend in use (bubblewrap, docker, sqlite, mariadb, oxigraph, ...)."""

    @abstractmethod
    def load_tasks(self, src: str) -> list[Task]:
        """Tasks from ``src`` (a file, or a named source such as ``embedded``), in a deterministic order."""

    @abstractmethod
    def open_env(self, task: Task) -> Environment:
        """Start a fresh environment for one episode of ``task``."""

    @abstractmethod
    def prompt(self, task: Task) -> list[Turn]:
        """Opening turns in THUDM's shape: instructions, acknowledgement and one-shot (gpt turns ``loss: False``),
        ending with the human turn that poses ``task``."""

    @abstractmethod
    def parse(self, reply: str) -> Action | FormatError:
        """Parse a model reply into an action; a bad format is a ``FormatError``, never an exception."""

    def is_final(self, action: Action) -> bool:
        """Whether an action ends the episode (answer/finish); the environment's ``done`` also ends it."""
        return False

    @contextlib.contextmanager
    def warm(self, concurrency: int) -> Iterator[None]:
        """Prepare environments ahead of need while a build's episodes run, ``concurrency`` at a time; the
        collector enters this around them. The default prepares nothing (os keeps sandboxes started ahead).

        Example:
            >>> with Builder.warm(None, 4):
            ...     "episodes run here"
            'episodes run here'
        """
        yield

    def reference_actions(self, task: Task) -> list[Action]:
        """The task's reference solution as actions, for ``--policy reference``: actions whose observations show
        what its final action answers. Raise ``NoReferenceSolution`` (any ValueError counts as one) if it has
        none; the build then skips the task and counts it."""
        raise NoReferenceSolution(f"{self.split} task {task.task_id} has no reference solution")

    def shows_answer(self, task: Task, action: Action, observations: list[str]) -> bool:
        """Whether ``observations`` (what the episode has shown the agent so far, as it saw them) hold the evidence
        for the reference solution's final ``action``. ``--policy reference`` skips a task whose reference answer
        they do not show, since a trajectory that answers without evidence teaches the model to guess. The default
        accepts: a split overrides it where an answer can be looked for in the observations' text.

        Example:
            >>> Builder.shows_answer(None, Task("t", "q", "package"), Action("answer", "3"), [])
            True
        """
        return True

    def template_thought(self, task: Task, action: Action) -> str:
        """The thought written before ``action`` under ``--policy reference`` when no model writes thoughts."""
        if self.is_final(action):
            return "I have what I need, so I will give the final answer."
        first = action.argument.strip().splitlines()[0] if action.argument.strip() else ""
        what = f" `{first[:80]}`" if first else ""
        return f"I will take the next step of the solution with {action.kind}{what} to move the task forward."

    def web_server(self, host: str, port: int) -> Any:
        """The environment as pages a person can use in a browser: an HTTP server bound to ``host:port``, not yet
        serving (``agentinstruct serve SPLIT`` runs it). A split without pages keeps this default, which refuses.

        Example:
            >>> Builder.web_server(type("B", (), {"split": "db"})(), "127.0.0.1", 0)
            Traceback (most recent call last):
            ...
            ValueError: the db split has no pages to serve
        """
        raise ValueError(f"the {self.split} split has no pages to serve")

    def record_tasks(self, site: str, actions: Path, out: Path) -> str:
        """Record tasks in the split's own format by playing the gold actions in the file ``actions`` on ``site``
        (a URL, or the name of a site the split ships) in a real browser, and write them to ``out``; returns a
        one-line summary (``agentinstruct record SPLIT`` prints it). A split that records nothing keeps this
        default, which refuses.

        Example:
            >>> Builder.record_tasks(type("B", (), {"split": "db"})(), "shop", Path("a.json"), Path("o.json"))
            Traceback (most recent call last):
            ...
            ValueError: the db split records no tasks from a browser
        """
        raise ValueError(f"the {self.split} split records no tasks from a browser")

    @classmethod
    def has_self_instruct(cls) -> bool:
        """Whether the split can have a model write its tasks (it overrides ``self_instruct``).

        Example:
            >>> Builder.has_self_instruct()
            False
        """
        return cls.self_instruct is not Builder.self_instruct

    async def self_instruct(self, agent: Any, n: int, out: Path, *, seed: int = 0,
                            concurrency: int = 4) -> tuple[list[Task], Any]:
        """Grow the task file ``out`` to ``n`` tasks the model (``agent``, an ``AgentClient``) wrote and the split's
        environment verified; resume what ``out`` already holds. Returns the file's tasks and a report whose text
        says what was accepted and why candidates were rejected.

        Used by ``agentinstruct self-instruct SPLIT`` and ``build SPLIT --tasks self-instruct``. A split without a
        self-instruct source keeps this default, which refuses with ``NoSelfInstruct``.
        """
        raise NoSelfInstruct(f"the {self.split} split has no self-instruct task source")

    @abstractmethod
    def render(self, thought: str, action: Action) -> str:
        """A gpt turn in the split's format for ``thought`` and ``action`` (used by ``--policy reference``);
        ``parse(render(t, a))`` must give back ``a``."""


class QueryBuilder(Builder):
    """A split of query tasks (mind2web): an episode is a series of one-turn questions its ``QueryEnvironment``
    poses, not a ReAct loop, and gives one record per question (one human turn that holds the whole question, one
    gpt turn). The engine asks the model each question in a fresh conversation; under ``--policy reference`` it
    answers each with ``Query.reference``, the model or ``template_thought`` writing the thought."""

    max_turns: ClassVar[int] = 1

    @abstractmethod
    def open_env(self, task: Task) -> QueryEnvironment:  # type: ignore[override]
        """Start the questions of one episode of ``task``."""

    def prompt(self, task: Task) -> list[Turn]:
        """A query task has no opening of its own: each ``Query`` carries its whole conversation.

        Example:
            >>> QueryBuilder.prompt(type("B", (), {"split": "mind2web"})(), Task("t", "q", "train_split"))
            Traceback (most recent call last):
            ...
            TypeError: mind2web is a query split: its questions come from QueryEnvironment.next_query, not prompt()
        """
        raise TypeError(f"{self.split} is a query split: its questions come from QueryEnvironment.next_query, "
                        "not prompt()")
