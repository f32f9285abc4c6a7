"""The two ALFWorld text grammars, and the PDDL domain each one is played with.

ALFWorld 0.4 changed the text of its games: ``put {o} in/on {r}`` became ``move {o} to {r}``, "You arrive at
loc N." became "You arrive at {receptacle}.", and a ``help`` action was added. AgentBench and the released
AgentInstruct rows use the older text (identical to the alfworld 0.3.5 wheel's ``alfred.twl2``); agents trained
on one fail on the other (AgentGym issue 41). Both grammars are derived here from the installed 0.4.2 wheel's
files, the older one by undoing exactly those three changes, so nothing is downloaded and a changed wheel is
caught (``GrammarError``) instead of silently producing a third text.

- ``agentbench`` (the default): the older grammar, with the domain's ``help`` action removed as in 0.3.
- ``alfworld-0.4``: the wheel's grammar and domain as shipped.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from importlib.metadata import version

GRAMMARS: tuple[str, ...] = ("agentbench", "alfworld-0.4")
DEFAULT = "agentbench"
GOAL_PLACEHOLDER = "UNKNOWN GOAL"
_TASK_LINE = re.compile(r'"rhs": "Your task is to: (.*?)\."')

# 0.4.2 text -> older text, each expected exactly this many times in the wheel's grammar.
_OLDER_TEXT: tuple[tuple[str, str, int], ...] = (
    ('"rhs": "You arrive at {r.name}. #examineReceptacle.feedback#"',
     '"rhs": "You arrive at {lend.name}. #examineReceptacle.feedback#"', 1),
    ('"rhs": "You move the {o.name} to the {r.name}."', '"rhs": "You put the {o.name} in/on the {r.name}."', 1),
    ('template :: "move {o} to {r}";', 'template :: "put {o} in/on {r}";', 2),
)
_HELP_GRAMMAR = re.compile(r"\naction help \{.*?\n\}\n?", re.DOTALL)
_HELP_DOMAIN = re.compile(r"\n\(:action help\n.*?\n\)\n", re.DOTALL)


class GrammarError(RuntimeError):
    """The installed alfworld wheel's grammar or domain is not the one the older grammar is derived from."""


def _wheel_file(name: str) -> str:
    return (resources.files("alfworld") / "data" / name).read_text()


def _replace_counted(text: str, old: str, new: str, count: int, what: str) -> str:
    found = text.count(old)
    if found != count:
        raise GrammarError(f"alfworld {version('alfworld')}'s {what}: expected {count} x {old!r}, found {found}")
    return text.replace(old, new)


@cache
def game_logic(grammar: str = DEFAULT) -> tuple[str, str]:
    """``(pddl_domain, grammar)`` text for a grammar version; the grammar still holds ALFWorld's goal placeholder.

    >>> domain, text = game_logic("agentbench")
    >>> 'put {o} in/on {r}' in text, 'move {o} to {r}' in text, '(:action help' in domain
    (True, False, False)
    >>> 'move {o} to {r}' in game_logic("alfworld-0.4")[1]
    True
    """
    if grammar not in GRAMMARS:
        raise ValueError(f"unknown ALFWorld grammar {grammar!r} (choose from {', '.join(GRAMMARS)})")
    domain, text = _wheel_file("alfred.pddl"), _wheel_file("alfred.twl2")
    if grammar == "alfworld-0.4":
        return domain, text
    for old, new, count in _OLDER_TEXT:
        text = _replace_counted(text, old, new, count, "alfred.twl2")
    text, n_grammar = _HELP_GRAMMAR.subn("\n", text)
    domain, n_domain = _HELP_DOMAIN.subn("\n", domain)
    if (n_grammar, n_domain) != (1, 1):
        raise GrammarError(f"alfworld {version('alfworld')}: expected one help action in alfred.twl2 and alfred.pddl, "
                           f"found {n_grammar} and {n_domain}")
    return domain, text


def with_goal(grammar_text: str, goal: str) -> str:
    """A grammar with the goal text in place of ALFWorld's placeholder, as ``alfworld-generate`` writes games.

    >>> 'Your task is to: put a mug in desk.' in with_goal(game_logic()[1], "put a mug in desk")
    True
    """
    if GOAL_PLACEHOLDER not in grammar_text:
        raise GrammarError(f"the grammar has no {GOAL_PLACEHOLDER!r} to put the goal in")
    return grammar_text.replace(GOAL_PLACEHOLDER, goal)


def goal_of(grammar_text: str) -> str:
    """The goal text a game's grammar holds ("Your task is to: ...").

    >>> goal_of(with_goal(game_logic()[1], "put a mug in desk"))
    'put a mug in desk'
    """
    match = _TASK_LINE.search(grammar_text)
    if not match:
        raise GrammarError("the game's grammar has no 'Your task is to: ...' line")
    return match.group(1)


def engine_version(grammar: str) -> str:
    """What ``env.version`` records: the engine's package versions and the grammar played.

    >>> engine_version("agentbench").startswith("alfworld ")
    True
    """
    return f"alfworld {version('alfworld')}, textworld {version('textworld')}, grammar {grammar}"
