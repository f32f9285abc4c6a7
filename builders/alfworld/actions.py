"""How a free-text action becomes a game command: AgentBench's rule, and the observation clean-up.

AgentBench's ALFWorld harness (``src/server/tasks/alfworld/utils.py``, ``process_action``) takes the reply's
first line, lowercased and stripped; a command the game admits is played as it is; otherwise the admissible
command with the highest sentence BLEU (NLTK, smoothing method 4) is played when that BLEU is above 0.01, and
the text is played unchanged when none is, so the engine answers "Nothing happens.". Observations lose the "You
arrive at loc N. " prefix of the older grammar (``process_ob``): the number names no place the agent can use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

BLEU_FLOOR = 0.01
_SMOOTHING = SmoothingFunction().method4
_ARRIVAL = re.compile(r"^You arrive at loc \d+\. ")


@dataclass(frozen=True)
class Mapped:
    """The command played for a reply's action, and how it was found: ``exact``, ``mapped`` or ``invalid``."""

    command: str
    how: str


def _bleu(reference: str, candidate: str) -> float:
    return float(sentence_bleu([reference.split()], candidate.split(), smoothing_function=_SMOOTHING))


def map_action(action: str, admissible: list[str]) -> Mapped:
    """The command AgentBench plays for ``action`` given the admissible commands.

    >>> admissible = ["go to desk 1", "go to drawer 1", "open drawer 1", "inventory", "look"]
    >>> map_action("Go to desk 1", admissible)
    Mapped(command='go to desk 1', how='exact')
    >>> map_action("go to the desk", admissible)
    Mapped(command='go to desk 1', how='mapped')
    >>> map_action("fly", admissible)
    Mapped(command='fly', how='invalid')
    """
    text = action.strip().lower().split("\n")[0]
    if not admissible or text in admissible:
        return Mapped(text, "exact")
    scores = [_bleu(choice, text) for choice in admissible]
    best = max(range(len(scores)), key=scores.__getitem__)
    if scores[best] > BLEU_FLOOR:
        return Mapped(admissible[best], "mapped")
    return Mapped(text, "invalid")


def clean_observation(text: str) -> str:
    """An observation as AgentBench shows it.

    >>> clean_observation("You arrive at loc 12. On the desk 1, you see a pen 1.")
    'On the desk 1, you see a pen 1.'
    """
    return _ARRIVAL.sub("", text)
