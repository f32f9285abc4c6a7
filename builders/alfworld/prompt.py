"""The alfworld conversation: instructions, the acknowledgement, a one-shot example of the task's type, the task.

The shape is AgentInstruct's alfworld rows: a human turn of instructions, a gpt "OK", then the task turn "Here is
your task. You are in the middle of a room. ... Your task is to: ...", gpt turns ``THOUGHT: ...`` /
``ACTION: ...`` and the game's observations. The instructions are this package's own words. The example of each
task type is a game generated for it (seed ``EXAMPLE_SEED``, in no build or evaluation set) played by the expert
with template thoughts, in each grammar (``data/examples.json``, written by ``python -m
agentinstruct.builders.alfworld.generate --examples``); its gpt turns are not trained (``loss: false``).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from agentinstruct.builders.base import Turn, opening_turns

EXAMPLES = Path(__file__).parent / "data" / "examples.json"
TASK_OPENING = "Here is your task. "

INSTRUCTIONS = """You are an agent in a household, and you complete a household task by acting in it with text \
commands. First you get a description of the room, listing the receptacles around you, and the task. Each turn, \
reply in exactly this format:
THOUGHT: what you know so far and what you will do next.
ACTION: one command.
Commands look like: go to {receptacle}, open {receptacle}, close {receptacle}, take {object} from {receptacle}, \
put {object} in/on {receptacle}, clean {object} with {receptacle}, heat {object} with {receptacle}, cool \
{object} with {receptacle}, use {object}, examine {something}, look, inventory. Name things exactly as the \
room's description and the observations name them, with their number (for example "desk 1").
After each command you see what happened. "Nothing happens." means the command could not be carried out: try \
another. Objects are often inside closed receptacles, so open them to look inside. You have at most 35 \
commands."""

ACKNOWLEDGEMENT = "OK"


@cache
def _examples() -> dict[str, dict[str, list[Turn]]]:
    return json.loads(EXAMPLES.read_text())


def example_turns(grammar: str, task_type: str) -> list[Turn]:
    """The one-shot example of ``task_type`` in ``grammar``: human and gpt turns, gpt turns ``loss: False``.

    >>> turns = example_turns("agentbench", "pick_and_place_simple")
    >>> turns[0]["value"].startswith("Here is your task. You are in the middle of a room."), turns[1]["loss"]
    (True, False)
    """
    return [dict(t) for t in _examples()[grammar][task_type]]


def prompt_turns(grammar: str, task_type: str) -> list[Turn]:
    """The turns before the game's opening text; the last one is the task turn, which the opening completes.

    >>> [t["from"] for t in prompt_turns("agentbench", "look_at_obj_in_light")][:3]
    ['human', 'gpt', 'human']
    """
    example = example_turns(grammar, task_type)
    pairs = [(h["value"], g["value"]) for h, g in zip(example[::2], example[1::2])]
    return opening_turns(INSTRUCTIONS, ACKNOWLEDGEMENT, pairs, TASK_OPENING)


def task_text(opening: str) -> str:
    """The game's opening as the task turn shows it: the welcome banner dropped, paragraphs on their own lines.

    >>> task_text("-= Welcome to TextWorld, ALFRED! =-\\n\\nYou are in the middle of a room.\\n\\nYour task is to: x.")
    'You are in the middle of a room.\\nYour task is to: x.'
    """
    return "\n".join(opening.split("\n\n")[1:])
