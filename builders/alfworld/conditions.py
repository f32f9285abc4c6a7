"""ALFRED's goal conditions per task type, counted on the text game's state.

ALFRED scores partial progress as goal conditions met out of a total (``alfworld/env/tasks.py``,
``goal_conditions_met``): pick-and-place 1 (the object in the receptacle), pick-two 2 (each object placed, at most
two in one receptacle), look-in-light 2 (the object held, the lamp on where the agent stands), clean, heat and
cool 3 (an object in place, an object cleaned/heated/cooled, one object both). The same counts are taken here
from the TextWorld facts of the game's final state (sliced tasks are not among ALFWorld's text games).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

_CHANGE = {"pick_clean_then_place_in_recep": "isclean", "pick_heat_then_place_in_recep": "ishot",
           "pick_cool_then_place_in_recep": "iscool"}


def _name(variable: Any) -> str:
    return str(variable.name).strip()


def goal_conditions(task_type: str, params: dict[str, Any], facts: list[Any]) -> tuple[int, int]:
    """``(met, total)`` goal conditions of a game's state (facts with demangled names, as ``Game.facts``).

    >>> from textworld.logic import Proposition, Variable
    >>> def fact(name, *args): return Proposition(name, [Variable(a, "t") for a in args])
    >>> state = [fact("objecttype", "mug 1", "mugtype "), fact("receptacletype", "desk 1", "desktype "),
    ...          fact("inreceptacle", "mug 1", "desk 1")]
    >>> goal_conditions("pick_and_place_simple", {"object_target": "Mug", "parent_target": "Desk"}, state)
    (1, 1)
    >>> goal_conditions("pick_heat_then_place_in_recep", {"object_target": "Mug", "parent_target": "Desk"}, state)
    (1, 3)
    """
    by_name: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for f in facts:
        by_name[f.name].append(tuple(_name(a) for a in f.arguments))
    otype = {o: t.removesuffix("type") for o, t in by_name["objecttype"]}
    rtype = {r: t.removesuffix("type") for r, t in by_name["receptacletype"]}
    obj = str(params.get("object_target", "")).lower()
    recep = str(params.get("parent_target", "")).lower()
    objects = {o for o, t in otype.items() if t == obj}
    inside = [(o, r) for o, r in by_name["inreceptacle"] if o in objects and rtype.get(r) == recep]
    if task_type == "pick_and_place_simple":
        return int(bool(inside)), 1
    if task_type == "pick_two_obj_and_place":
        per_receptacle: dict[str, int] = defaultdict(int)
        for _, r in inside:
            per_receptacle[r] += 1
        return min(max(per_receptacle.values(), default=0), 2), 2
    if task_type == "look_at_obj_in_light":
        lamp = str(params.get("toggle_target", "")).lower()
        held = any(o in objects for _, o in by_name["holds"])
        here = {loc for _, loc in by_name["atlocation"]}
        stands = {r for r, loc in by_name["receptacleatlocation"] if loc in here}
        toggled = {o for (o,) in by_name["istoggled"]}
        lit = any(o in toggled and otype.get(o) == lamp and r in stands for o, r in by_name["inreceptacle"])
        return int(held) + int(lit), 2
    if task_type in _CHANGE:
        changed = {o for (o,) in by_name[_CHANGE[task_type]] if o in objects}
        placed = {o for o, _ in inside}
        return int(bool(placed)) + int(bool(changed)) + int(bool(placed & changed)), 3
    raise ValueError(f"unknown ALFWorld task type {task_type!r}")
