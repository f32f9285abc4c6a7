"""The ``alfworld`` split: an agent completes household tasks in ALFWorld's text games, on the real engine.

Tasks: ``embedded`` (the games this package generated from the alfworld wheel's floor plans, ``generate``; its
``train`` part), ``embedded-eval`` (their fixed evaluation part, ``valid_unseen``), or a folder in ALFWorld's own
layout (``json_2.1.1/...``, as ``alfworld-download`` writes it, or any folder inside it), read unchanged: ``train``
games are ``train_split`` tasks; ``valid_seen`` and ``valid_unseen`` are ALFWorld's evaluation sets and are refused
unless ``--eval-games`` is given. Engine: TextWorld's PDDL environment with fast-downward and ALFWorld's demangler.
Grammar: AgentBench's older text by default (``--grammar``, recorded in ``env.version``). At most 35 steps; replies
map onto admissible commands by AgentBench's rule (``actions``). Reward: 1 when the game is won (metric
``success``), with ALFRED's goal conditions and the mapped and invalid action counts as components.

    agentinstruct build alfworld --policy reference --out DIR
    agentinstruct build alfworld --tasks ~/alfworld/json_2.1.1/train --model M --out DIR
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

from agentinstruct.builders.base import (EMBEDDED, Action, Builder, Environment, FormatError, NoReferenceSolution,
                                         Score, StepResult, Task, Turn)
from agentinstruct.builders.options import option

from .actions import clean_observation, map_action
from .conditions import goal_conditions
from .engine import Game
from .expert import Expert, kind, target_of
from .games import EVAL_SPLITS, GameFile, embedded_games, read_folder
from .grammar import DEFAULT, GRAMMARS, engine_version, goal_of
from .prompt import prompt_turns, task_text

EMBEDDED_EVAL = "embedded-eval"
MAX_STEPS = 35  # AgentBench's limit
_ACTION = re.compile(r"^\s*\**ACTION\**\s*:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_FORMAT_HELP = "Reply with 'THOUGHT: ...' and then one line 'ACTION: <command>', e.g. ACTION: go to desk 1."
_VERBS = {"pick_clean_then_place_in_recep": ("clean", "sinkbasin"), "pick_heat_then_place_in_recep": ("heat",
          "microwave"), "pick_cool_then_place_in_recep": ("cool", "fridge")}


@dataclass(frozen=True)
class AlfworldOptions:
    """The alfworld split's environment options."""

    grammar: str = option(DEFAULT, "game text: agentbench (the older grammar AgentBench and AgentInstruct use: "
                          "'put X in/on Y', 'You arrive at loc N.') or alfworld-0.4 ('move X to Y')",
                          choices=GRAMMARS)
    eval_games: bool = option(False, "allow ALFWorld's evaluation games (valid_seen, valid_unseen, embedded-eval) "
                              "as tasks; builds of training data refuse them otherwise")


class AlfworldEnv(Environment):
    """One episode: a live game; commands are mapped onto admissible ones, observations cleaned as AgentBench's."""

    def __init__(self, task: Task, game: Game) -> None:
        self.task, self.game = task, game
        self.counts = {"mapped_actions": 0, "invalid_actions": 0}

    def reset(self) -> str | None:
        return task_text(self.game.reset())

    def step(self, action: Action) -> StepResult:
        mapped = map_action(action.argument, self.game.admissible)
        if mapped.how != "exact":
            self.counts[f"{mapped.how}_actions"] += 1
        observation = clean_observation(self.game.step(mapped.command))
        return StepResult(observation, done=self.game.won)

    def score(self, final: Action | None) -> Score:
        met, total = goal_conditions(self.task.payload["task_type"], self.task.payload["pddl_params"],
                                     self.game.facts)
        won = self.game.won
        components = {"won": float(won), "goal_conditions_met": float(met), "goal_conditions_total": float(total),
                      "goal_conditions": met / total, **{k: float(v) for k, v in self.counts.items()}}
        return Score(reward=float(won), success=won, metric="success", components=components)

    def close(self) -> None:
        self.game.close()


def _task(game: GameFile, source: str, origin: str) -> Task:
    payload = {"origin": origin, "path": game.path, "task_type": game.task_type,
               "pddl_params": game.traj["pddl_params"], "split": game.split}
    return Task(game.path, goal_of(game.data["grammar"]), source, payload)


class AlfworldBuilder(Builder):
    """ALFWorld's household text games (see the module docstring)."""

    split = "alfworld"
    env_name = "alfworld"
    max_turns = MAX_STEPS
    card_description = (
        "ALFWorld's text games on TextWorld's PDDL engine (fast-downward, ALFWorld's grammar and demangler): the "
        "agent answers `THOUGHT:` / `ACTION:` turns for at most 35 steps; actions are mapped to admissible "
        "commands as AgentBench maps them; reward 1 when the game is won, the goal conditions as components."
    )
    embedded_tasks = True
    Options = AlfworldOptions
    observation_limit = 2000  # a room's opening lists every receptacle; AgentBench does not cut observations
    # An episode is seconds of engine time and up to 35 model calls: the demo plays two games of each type, and
    # SmolLM2 writes the thoughts of one and acts in one.
    demo_tasks = 12
    demo_model_tasks = 1

    def __init__(self, grammar: str = DEFAULT, eval_games: bool = False) -> None:
        if grammar not in GRAMMARS:
            raise ValueError(f"unknown ALFWorld grammar {grammar!r} (choose from {', '.join(GRAMMARS)})")
        self.grammar = grammar
        self.eval_games = eval_games
        self.env_version = engine_version(grammar)
        self._games: dict[str, dict[str, GameFile]] = {}

    @classmethod
    def from_options(cls, options: "AlfworldOptions", run: argparse.Namespace | None = None) -> "AlfworldBuilder":
        return cls(options.grammar, options.eval_games)

    @property
    def backend(self) -> str:
        return "textworld-pddl"

    def load_tasks(self, src: str) -> list[Task]:
        """``embedded``, ``embedded-eval`` or a folder of ALFWorld games.

        >>> tasks = AlfworldBuilder().load_tasks("embedded")
        >>> len(tasks) >= 120, tasks[0].source, tasks[0].task_id.split("/")[:2]
        (True, 'package', ['json_2.1.1', 'train'])
        >>> AlfworldBuilder().load_tasks("embedded-eval")
        Traceback (most recent call last):
        ...
        ValueError: alfworld tasks embedded-eval: 36 games are ALFWorld evaluation games (valid_unseen); training data is not built from them (give --eval-games to run them anyway)
        """
        if src in (EMBEDDED, EMBEDDED_EVAL):
            games = embedded_games("train" if src == EMBEDDED else "valid_unseen")
            origin, source = src, "package"
        else:
            path = Path(src)
            if not path.is_dir():
                raise ValueError(f"alfworld tasks: {src} is neither 'embedded', '{EMBEDDED_EVAL}' nor a folder of "
                                 "ALFWorld games (json_2.1.1/...)")
            games, origin, source = read_folder(path), str(path.resolve()), "train_split"
            if not games:
                raise ValueError(f"alfworld tasks: {src} holds no playable ALFWorld game (a folder with "
                                 "traj_data.json and a solvable game.tw-pddl)")
        held_out = sorted({g.split for g in games if g.split in EVAL_SPLITS})
        if held_out and not self.eval_games:
            n = sum(g.split in EVAL_SPLITS for g in games)
            raise ValueError(f"alfworld tasks {src}: {n} games are ALFWorld evaluation games ({', '.join(held_out)});"
                             " training data is not built from them (give --eval-games to run them anyway)")
        self._games[origin] = {g.path: g for g in games}
        return [_task(g, source, origin) for g in games]

    def _game_file(self, task: Task) -> GameFile:
        origin = task.payload["origin"]
        if origin not in self._games:  # a resumed build's tasks come from its journal
            self.load_tasks(origin)
        return self._games[origin][task.payload["path"]]

    def _game(self, task: Task) -> Game:
        return Game(self._game_file(task).data, self.grammar)

    def open_env(self, task: Task) -> Environment:
        return AlfworldEnv(task, self._game(task))

    def prompt(self, task: Task) -> list[Turn]:
        return prompt_turns(self.grammar, task.payload["task_type"])

    def parse(self, reply: str) -> Action | FormatError:
        """The reply's ``ACTION:`` line (text after an invented observation is ignored).

        >>> AlfworldBuilder().parse("THOUGHT: the mug may be on the desk.\\nACTION: go to desk 1")
        Action(kind='command', argument='go to desk 1')
        >>> AlfworldBuilder().parse("I will go to the desk.")
        FormatError(message="No ACTION line. Reply with 'THOUGHT: ...' and then one line 'ACTION: <command>', e.g. ACTION: go to desk 1.")
        """
        match = _ACTION.search(reply.split("Observation:")[0])
        if not match:
            return FormatError(f"No ACTION line. {_FORMAT_HELP}")
        return Action("command", match.group(1))

    def reference_actions(self, task: Task) -> list[Action]:
        """The expert's commands, played from what it observes (``expert``); none when it cannot win in 35 steps."""
        put = "move {o} to {r}" if self.grammar == "alfworld-0.4" else "put {o} in/on {r}"
        expert = Expert(target_of(self._game_file(task).traj), MAX_STEPS, put)
        commands, won = expert.play(self._game(task))
        if not won:
            raise NoReferenceSolution(f"alfworld task {task.task_id}: the expert did not win within {MAX_STEPS} "
                                      f"steps ({len(commands)} commands)")
        return [Action("command", c) for c in commands]

    def template_thought(self, task: Task, action: Action) -> str:
        """A thought for an expert command, from the command and the task's targets.

        >>> task = Task("t", "put a clean mug in coffeemachine", "package", {"task_type":
        ...     "pick_clean_then_place_in_recep", "pddl_params": {"object_target": "Mug", "parent_target":
        ...     "CoffeeMachine", "toggle_target": ""}})
        >>> AlfworldBuilder().template_thought(task, Action("command", "clean mug 1 with sinkbasin 1"))
        'I hold the mug 1, so I clean it with the sinkbasin 1.'
        """
        params = task.payload["pddl_params"]
        obj, goal = params["object_target"].lower(), (params.get("parent_target") or "").lower()
        verb, station = _VERBS.get(task.payload["task_type"], ("", ""))
        words = action.argument.split()
        command = action.argument
        if command.startswith("go to "):
            where = command[len("go to "):]
            if kind(where) == goal:
                return f"The {obj} goes in/on the {goal}, so I go to the {where}."
            if station and kind(where) == station:
                return f"I go to the {where}: I need it to {verb} the {obj}, and the {obj} may be there too."
            article = "an" if obj[:1] in "aeiou" else "a"
            return f"I need {article} {obj}, and the {where} is a place where one may be, so I look there."
        if words[0] == "open":
            return f"The {command[5:]} is closed; I open it to see what is inside."
        if words[0] == "take":
            return f"There is the {' '.join(words[1:3])}. I take it."
        if words[0] in ("clean", "heat", "cool"):
            item, _, tool = command[len(words[0]) + 1:].partition(" with ")
            return f"I hold the {item}, so I {words[0]} it with the {tool}."
        if words[0] in ("put", "move"):
            return f"Now I put the {' '.join(words[1:3])} in/on the {command.rsplit(' ', 2)[-2]} " \
                   f"{command.rsplit(' ', 1)[-1]}, as the task asks."
        if words[0] == "use":
            return f"I hold the {obj}; I switch on the {' '.join(words[1:])} to look at it in its light."
        return f"I will {command}."

    def render(self, thought: str, action: Action) -> str:
        return f"THOUGHT: {thought}\nACTION: {action.argument}"
