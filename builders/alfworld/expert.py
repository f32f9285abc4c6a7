"""An expert that plays an ALFWorld game from what it has seen, as ALFWorld's handcoded expert does.

It knows the goal (the task text: object, receptacle, appliance or lamp) and the room's receptacles (the opening
text lists them), never where objects are. It searches the receptacles that may hold the object (``gen/
constants.py``), types with fewer instances first (a fridge before one of eight cabinets: where a type has one
receptacle, an object placed on that type is there), opening closed ones, until it sees the object; then it
carries out the task: clean, heat or cool it with the sink basin, microwave or fridge, put it on the target, or
hold it and switch on the lamp; for two objects it searches on for the second. Every command comes from what the
observations showed, and every sighting is remembered, so it never walks straight to an object it has not seen.
ALFWorld 0.4's handcoded expert expects 0.4's grammar (``move ... to``) and loops on pick-two games (its own
docstring calls it a heuristic); this one reads both grammars.

``play`` runs it in the engine and returns its commands; ``--policy reference`` replays them (the game is
deterministic, so the replay sees the same observations).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from alfworld.gen import constants

from .engine import Game

_LISTED = re.compile(r"you see (.*?)\.(?:\s|$)")
_ARTICLE = re.compile(r"^(?:a|an|the|some)\s+")
_LOC = re.compile(r"^You arrive at loc \d+\. ")


@dataclass(frozen=True)
class Target:
    """What a game asks, from its task: types as ALFRED names them (``Mug``, ``CoffeeMachine``)."""

    task_type: str
    object_type: str
    receptacle_type: str = ""
    lamp_type: str = ""


def listed(text: str) -> list[str]:
    """Names in a "you see a, b, and c." sentence.

    >>> listed("On the desk 1, you see a mug 2, an apple 1, and a pen 3.")
    ['mug 2', 'apple 1', 'pen 3']
    >>> listed("On the desk 1, you see nothing.")
    []
    """
    match = _LISTED.search(text)
    if not match or match.group(1) == "nothing":
        return []
    items = re.split(r",\s*(?:and\s+)?|\s+and\s+", match.group(1))
    return [_ARTICLE.sub("", item.strip()) for item in items if item.strip()]


def kind(name: str) -> str:
    """The type part of a demangled name: ``sinkbasin 1`` -> ``sinkbasin``."""
    return name.rsplit(" ", 1)[0]


@dataclass
class _Mind:
    """What the expert has seen: the receptacles, what each held when it looked, what it holds, its steps."""

    target: Target
    put_template: str
    receptacles: list[str]
    seen: dict[str, list[str]] = field(default_factory=dict)
    visited: set[str] = field(default_factory=set)
    here: str = ""
    commands: list[str] = field(default_factory=list)


class Expert:
    """Plays one game within ``max_steps`` commands.

    Example:
        >>> from agentinstruct.builders.alfworld.games import embedded_games
        >>> game = embedded_games("train")[0]
        >>> commands, won = Expert(target_of(game.traj)).play(Game(game.data))
        >>> won, commands[0].startswith("go to ")
        (True, True)
    """

    def __init__(self, target: Target, max_steps: int = 35, put_template: str = "put {o} in/on {r}") -> None:
        self.target = target
        self.max_steps = max_steps
        self.put_template = put_template

    def play(self, game: Game) -> tuple[list[str], bool]:
        """Play ``game`` from its start; ``(commands, won)``."""
        try:
            opening = game.reset()
            room = opening.split("\n\n")[1] if "\n\n" in opening else opening
            mind = _Mind(self.target, self.put_template, listed(room))
            self._game = game
            self._mind = mind
            try:
                self._solve()
            except _OutOfSteps:
                pass
            return mind.commands, game.won
        finally:
            game.close()

    # -- acting ---------------------------------------------------------------------------------------------------

    def _do(self, command: str) -> str:
        if len(self._mind.commands) >= self.max_steps or self._game.won:
            raise _OutOfSteps
        if command not in self._game.admissible:
            # Only admissible commands: an episode replays them through AgentBench's mapping, which would turn
            # any other text into some other command.
            raise _OutOfSteps
        self._mind.commands.append(command)
        return _LOC.sub("", self._game.step(command))

    def _go(self, receptacle: str) -> str | None:
        """Stand in front of a receptacle; the arrival text, or None when no walk was needed. Receptacles can share
        a place (two drawers of one chest): there the game admits no ``go to`` and the agent is already in front."""
        if self._mind.here == receptacle:
            return None
        command = f"go to {receptacle}"
        text = self._do(command) if command in self._game.admissible else None
        self._mind.here = receptacle
        return text

    def _visit(self, receptacle: str) -> list[str]:
        """Go to a receptacle (unless there already: it was opened on arrival), open it if closed; what it holds."""
        if self._mind.here != receptacle:
            text = self._go(receptacle)
            if text is None:  # at the same place already: look at it without walking
                opener = f"open {receptacle}"
                text = self._do(opener if opener in self._game.admissible else f"examine {receptacle}")
            elif f"The {receptacle} is closed." in text:
                text = self._do(f"open {receptacle}")
            self._mind.seen[receptacle] = listed(text)
        self._mind.visited.add(receptacle)
        return self._mind.seen.get(receptacle, [])

    # -- searching ------------------------------------------------------------------------------------------------

    def _holders(self, object_type: str) -> list[str]:
        """The room's receptacles, those that may hold the type first (fewer instances of a type first, then as
        listed)."""
        if object_type == "DeskLamp":
            allowed = {"Desk", "SideTable", "Dresser"}
        else:
            allowed = {r for r, objects in constants.VAL_RECEPTACLE_OBJECTS.items() if object_type in objects}
        lower = {a.lower() for a in allowed}
        counts = {k: sum(kind(r) == k for r in self._mind.receptacles) for k in map(kind, self._mind.receptacles)}
        likely = sorted((r for r in self._mind.receptacles if kind(r) in lower),
                        key=lambda r: (counts[kind(r)], self._mind.receptacles.index(r)))
        # Then everywhere else: a real game may keep things where the constants do not expect them.
        return likely + [r for r in self._mind.receptacles if r not in likely]

    def _find(self, object_type: str, exclude: set[str] = frozenset(), avoid: str = "") -> tuple[str, str]:
        """``(object, receptacle)``: an instance of the type seen so far, else found by searching; never one in
        ``exclude``, and a receptacle of type ``avoid`` (where the task puts it) last."""
        name = object_type.lower()

        def sighting() -> tuple[str, str] | None:
            for receptacle, contents in self._mind.seen.items():
                for item in contents:
                    if kind(item) == name and item not in exclude:
                        return item, receptacle
            return None

        found = sighting()
        order = [r for r in self._holders(object_type) if kind(r) != avoid.lower()]
        order += [r for r in self._holders(object_type) if kind(r) == avoid.lower()]
        for receptacle in order:
            if found:
                return found
            if receptacle not in self._mind.visited:
                self._visit(receptacle)
                found = sighting()
        if found:
            return found
        raise _OutOfSteps

    def _first(self, receptacle_type: str) -> str:
        lowered = receptacle_type.lower()
        for r in self._mind.receptacles:
            if kind(r) == lowered:
                return r
        raise _OutOfSteps

    def _take(self, item: str, receptacle: str) -> None:
        self._go(receptacle)
        self._do(f"take {item} from {receptacle}")
        self._mind.seen[receptacle] = [i for i in self._mind.seen.get(receptacle, []) if i != item]

    def _solve(self) -> None:
        t = self._mind.target
        placed: set[str] = set()
        rounds = 2 if t.task_type == "pick_two_obj_and_place" else 1
        for _ in range(rounds):
            item, where = self._find(t.object_type, exclude=placed, avoid=t.receptacle_type)
            self._take(item, where)
            if t.task_type == "look_at_obj_in_light":
                lamp, stand = self._find(t.lamp_type)
                self._go(stand)
                self._do(f"use {lamp}")
                return
            appliance = {"pick_clean_then_place_in_recep": ("clean", "SinkBasin"),
                         "pick_heat_then_place_in_recep": ("heat", "Microwave"),
                         "pick_cool_then_place_in_recep": ("cool", "Fridge")}.get(t.task_type)
            if appliance:
                verb, kind_name = appliance
                station = self._first(kind_name)
                self._go(station)
                self._do(f"{verb} {item} with {station}")
            goal = self._first(t.receptacle_type)
            self._visit(goal)  # opened if closed: a closed receptacle takes nothing
            self._do(self._mind.put_template.format(o=item, r=goal))
            self._mind.seen[goal] = self._mind.seen.get(goal, []) + [item]
            placed.add(item)


class _OutOfSteps(Exception):
    """The step budget is spent or the search found nothing: the expert stops."""


def _targets(traj: dict) -> dict[str, str]:
    """``Target`` fields from a ``traj_data.json``'s ``pddl_params``."""
    params = traj["pddl_params"]
    return {"object_type": params["object_target"], "receptacle_type": params.get("parent_target") or "",
            "lamp_type": params.get("toggle_target") or ""}


def target_of(traj: dict) -> Target:
    """The expert's target for a game's ``traj_data.json``.

    >>> target_of({"task_type": "look_at_obj_in_light", "pddl_params": {"object_target": "Pen",
    ...            "parent_target": "", "toggle_target": "DeskLamp"}})
    Target(task_type='look_at_obj_in_light', object_type='Pen', receptacle_type='', lamp_type='DeskLamp')
    """
    return Target(traj["task_type"], **_targets(traj))
