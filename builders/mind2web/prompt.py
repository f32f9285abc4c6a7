"""One round's question and its reply, in the shape of AgentInstruct's mind2web rows and AgentBench's parsing.

The human turn is the pruned page between ``'''`` lines, the task, the previous actions (the last five, or
``None``) and the lettered choices, ``A. None of the above`` first. The reply is read as AgentBench reads it:
the first ``Answer: X`` with X in A-F (none: A), the first ``Action: CLICK|SELECT|TYPE`` and the first line
``Value: ...``. An action is ``Action(letter, "OP value")``: the operation string AgentBench scores by token F1.
"""

from __future__ import annotations

import re

from agentinstruct.builders.base import Action, FormatError, Turn

PREVIOUS_ACTIONS = 5
"""How many previous actions a question lists (AgentBench's ``previous_k``)."""
NONE_OF_THE_ABOVE = "A"
_ANSWER = re.compile(r"Answer: (A|B|C|D|E|F)")
_OPERATION = re.compile(r"Action: (CLICK|SELECT|TYPE)")
_VALUE = re.compile(r"Value: (.*)$", re.MULTILINE)
_FORMAT_HELP = ("Reply with 'Thought: ...', then 'Answer: ' and the letter of your choice, then 'Action: ' and "
                "CLICK, TYPE or SELECT, and for TYPE or SELECT a line 'Value: ' with the text to type or the option "
                "to pick.")


def letter(index: int) -> str:
    """The letter of the ``index``-th element choice (0-based): B, C, ... (A is "None of the above").

    >>> letter(0), letter(4)
    ('B', 'F')
    """
    return chr(ord("B") + index)


def question(page: str, task: str, previous: list[str], choices: list[str]) -> Turn:
    """The human turn of one round: ``page`` is the pruned page's text, ``choices`` the candidates' texts in page
    order.

    >>> print(question("<html> <a id=0> Home </a> </html>", "Go home", [], ["<a id=0> Home </a>"])["value"])
    '''
    <html> <a id=0> Home </a> </html>
    '''
    <BLANKLINE>
    Using the HTML page above, work toward the following task:
    Task: Go home
    Previous actions:
    None
    What should be the next action? Reply with 'Thought: ...', then 'Answer: ' and the letter of your choice, then 'Action: ' and CLICK, TYPE or SELECT, and for TYPE or SELECT a line 'Value: ' with the text to type or the option to pick. Choose from the choices below (if the element the next action needs is not among them, choose A. 'None of the above'):
    <BLANKLINE>
    A. None of the above
    B. <a id=0> Home </a>
    """
    shown = "\n".join(previous[-PREVIOUS_ACTIONS:]) if previous else "None"
    lines = [f"{NONE_OF_THE_ABOVE}. None of the above"] + [f"{letter(i)}. {c}" for i, c in enumerate(choices)]
    text = (f"'''\n{page}\n'''\n\nUsing the HTML page above, work toward the following task:\nTask: {task}\n"
            f"Previous actions:\n{shown}\nWhat should be the next action? {_FORMAT_HELP} Choose from the choices "
            "below (if the element the next action needs is not among them, choose A. 'None of the above'):\n\n"
            + "\n".join(lines))
    return {"from": "human", "value": text, "loss": None}


def operation(op: str, value: str) -> str:
    """The operation string AgentBench scores: ``OP`` and, but for CLICK, the value's first line.

    >>> operation("TYPE", "New York\\nNY"), operation("CLICK", "Search")
    ('TYPE New York', 'CLICK')
    """
    if op == "CLICK":
        return op
    return f"{op} {value.splitlines()[0].strip() if value.strip() else ''}".strip()


def parse_reply(reply: str) -> Action | FormatError:
    """The answer letter and operation of a reply, read as AgentBench reads it; no ``Answer:`` is a format error
    (which AgentBench, and the round, take as A).

    >>> parse_reply("Thought: the field takes the city.\\nAnswer: C.\\nAction: TYPE\\nValue: Boston")
    Action(kind='C', argument='TYPE Boston')
    >>> parse_reply("Thought: nothing fits.\\nAnswer: A.")
    Action(kind='A', argument='')
    >>> parse_reply("I would click the button.")
    FormatError(message="No 'Answer: <letter>' line (a letter A-F). Reply with 'Thought: ...', then ...")
    """
    text = reply.strip()
    answer = _ANSWER.search(text)
    if answer is None:
        return FormatError(f"No 'Answer: <letter>' line (a letter A-F). {_FORMAT_HELP}")
    op = _OPERATION.search(text)
    value = _VALUE.search(text)
    argument = f"{op.group(1) if op else ''} {value.group(1).strip() if value else ''}".strip()
    return Action(answer.group(1), argument)


def render_reply(thought: str, action: Action) -> str:
    """A reply in AgentInstruct's shape for ``action``; ``parse_reply`` gives ``action`` back.

    >>> print(render_reply("I type the city.", Action("C", "TYPE Boston")))
    Thought: I type the city.
    Answer: C.
    Action: TYPE
    Value: Boston
    >>> render_reply("No choice fits.", Action("A"))
    'Thought: No choice fits.\\nAnswer: A.'
    """
    lines = [f"Thought: {thought}", f"Answer: {action.kind}."]
    op, _, value = action.argument.partition(" ")
    if op:
        lines.append(f"Action: {op}")
    if value:
        lines.append(f"Value: {value}")
    return "\n".join(lines)


def token_f1(predicted: str, gold: str) -> float:
    """AgentBench's operation F1: F1 of the sets of whitespace tokens (both empty: 1).

    >>> token_f1("TYPE New York", "TYPE New York"), round(token_f1("TYPE York", "TYPE New York"), 3)
    (1.0, 0.8)
    >>> token_f1("", "CLICK"), token_f1("", "")
    (0.0, 1.0)
    """
    p, g = set(predicted.split()), set(gold.split())
    if not p and not g:
        return 1.0
    if not p or not g:
        return 0.0
    tp = len(p & g)
    if tp == 0:
        return 0.0
    precision, recall = tp / len(p), tp / len(g)
    return 2 * precision * recall / (precision + recall)
