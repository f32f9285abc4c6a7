"""A seeded generator of ALFWorld games from what the alfworld wheel ships, written in ALFWorld's own layout.

The real games come from ALFRED's simulator runs (``alfworld-download``, not reachable offline). This generator
builds the same kind of problem from the wheel's files instead: a floor plan's receptacles and object types
(``scenes``), ``gen/constants.py`` for which receptacle holds which object and which objects can be cleaned,
heated, cooled or toggled, and ``gen/goal_library.py`` for the goal PDDL and the goal text of each task type.
Objects are placed as ALFRED's random spawn places them: every placeable object type of the scene gets 1 to
``MAX_NUM_OF_OBJ_INSTANCES`` instances (the task's object 1 to ``PICKUP_REPEAT_MAX``), each inside or on a
receptacle that may hold it, closed cabinets, drawers and fridges included, so an agent has to look. A goal
already met at the start is re-drawn. A game is kept only when TextWorld's planner (fast-downward) solves it;
its plan is the game's ``walkthrough``.

Each game is written as ALFWorld writes one: ``json_2.1.1/<split>/<task_type>-<Object>-None-<Receptacle>-<scene>/
trial_T<id>/`` with ``game.tw-pddl``, ``traj_data.json`` and ``initial_state.pddl``. ``train`` games use the
training floor plans; the evaluation part (``valid_unseen``) uses floor plans no ``train`` game uses.

The package ships the games this module makes with its defaults (``data/games.tar.gz``, the reference set: the
planner build can differ between machines). To make more::

    python -m agentinstruct.builders.alfworld.generate --n 30 --seed 1 --out DIR
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import multiprocessing
import random
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alfworld.gen import constants, goal_library

from agentinstruct.builders.base import Task

from .builder import AlfworldBuilder
from .engine import Game
from .games import EMBEDDED_GAMES, TASK_TYPES, GameFile
from .grammar import DEFAULT, GRAMMARS, game_logic, goal_of, with_goal
from .prompt import EXAMPLES, TASK_OPENING
from .scenes import Scene, all_scenes, load_scene

SEED = 2310  # the arXiv number of AgentTuning, 2310.12823
PER_TYPE = 26
EVAL_PER_TYPE = 6
EVAL_SCENES = frozenset({5, 6, 210, 211, 310, 311, 410, 411})
"""Floor plans only the evaluation part uses (two per room type)."""
LAMPS_ON = ("Desk", "SideTable", "Dresser")  # where a desk lamp stands, in this order of preference
MAX_TRIES = 200
PLANNER_TIMEOUT = 120.0  # seconds a try may plan: 1-5 s for placing tasks, 10-30 s with an appliance on 2 cores
EXAMPLE_SEED = 12823  # the examples' games: a seed of their own, so they are in no build or evaluation set
EXAMPLE_ORIGIN = "examples"


@dataclass(frozen=True)
class Goal:
    """A task: its type and ALFRED's ``pddl_params`` targets (empty string where unused)."""

    task_type: str
    object_target: str
    parent_target: str = ""
    toggle_target: str = ""

    def params(self) -> dict[str, Any]:
        return {"object_target": self.object_target, "parent_target": self.parent_target,
                "toggle_target": self.toggle_target, "mrecep_target": "", "object_sliced": False}

    def folder(self, scene: int) -> str:
        """ALFWorld's task folder name, ``look_at_obj_in_light-AlarmClock-None-DeskLamp-301`` style."""
        second = self.toggle_target if self.task_type == "look_at_obj_in_light" else self.parent_target
        return f"{self.task_type}-{self.object_target}-None-{second}-{scene}"


def mangle(alfred_id: str) -> str:
    """An ALFRED id as a PDDL name, ALFWorld's way.

    >>> mangle("Sink|-01.90|+00.97|-01.50|SinkBasin")
    'Sink_bar__minus_01_dot_90_bar__plus_00_dot_97_bar__minus_01_dot_50_bar_SinkBasin'
    """
    for old, new in (("|", "_bar_"), ("+", "_plus_"), ("-", "_minus_"), (".", "_dot_"), (",", "_comma_")):
        alfred_id = alfred_id.replace(old, new)
    return alfred_id


def _holders(scene: Scene, object_type: str) -> list[str]:
    """Receptacle types of the scene that may hold ``object_type`` (a desk lamp stands on a desk or table)."""
    if object_type == "DeskLamp":
        return [t for t in LAMPS_ON if t in scene.receptacle_types()][:1]
    return sorted(t for t in scene.receptacle_types() if object_type in constants.VAL_RECEPTACLE_OBJECTS.get(t, ()))


def draw_goal(scene: Scene, task_type: str, rng: random.Random) -> Goal | None:
    """A goal of ``task_type`` the scene can pose (ALFRED's rules: valid rooms, objects with the property, a
    receptacle that may hold them, other than the appliance used), or None."""
    if scene.room not in constants.GOALS_VALID[task_type]:
        return None
    objects = [o for o in scene.object_types if o != "DeskLamp"]
    if task_type == "look_at_obj_in_light":
        if "DeskLamp" not in scene.object_types or not _holders(scene, "DeskLamp"):
            return None
        return Goal(task_type, rng.choice(objects), toggle_target="DeskLamp") if objects else None
    need, appliance = {"pick_clean_then_place_in_recep": ("Cleanable", "SinkBasin"),
                       "pick_heat_then_place_in_recep": ("Heatable", "Microwave"),
                       "pick_cool_then_place_in_recep": ("Coolable", "Fridge")}.get(task_type, (None, None))
    if appliance and appliance not in scene.receptacle_types():
        return None
    if need:
        objects = [o for o in objects if o in constants.VAL_ACTION_OBJECTS[need]]
    pairs = [(o, r) for o in objects for r in _holders(scene, o) if r != appliance]
    if not pairs:
        return None
    obj, recep = rng.choice(pairs)
    return Goal(task_type, obj, parent_target=recep)


def _object_id(base: str, object_type: str, rng: random.Random, taken: set[str]) -> str:
    x, y, z = (float(v) for v in base.split("|")[1:4])
    while True:
        jitter = [round(rng.uniform(-0.3, 0.3), 2) for _ in range(3)]
        oid = f"{object_type}|{x + jitter[0]:+06.2f}|{y + abs(jitter[1]):+06.2f}|{z + jitter[2]:+06.2f}"
        if oid not in taken:
            taken.add(oid)
            return oid


def place_objects(scene: Scene, goal: Goal, rng: random.Random) -> list[tuple[str, str, str]]:
    """``(object id, object type, receptacle id)`` for every object instance of a scene, ALFRED's spawn counts; no
    instance of the goal's object starts where the goal wants it."""
    by_type: dict[str, list[str]] = {}
    for r in scene.receptacles:
        by_type.setdefault(r.type, []).append(r.id)
    taken: set[str] = set()
    placed = []
    for object_type in scene.object_types:
        holders = _holders(scene, object_type)
        if object_type == goal.object_target:
            holders = [h for h in holders if h != goal.parent_target] or holders
            low = 2 if goal.task_type == "pick_two_obj_and_place" else 1
            count = rng.randint(low, max(low, constants.PICKUP_REPEAT_MAX))
        else:
            count = 1 if object_type == "DeskLamp" else rng.randint(1, constants.MAX_NUM_OF_OBJ_INSTANCES)
        if not holders:
            continue
        for _ in range(count):
            receptacle = rng.choice(by_type[rng.choice(holders)])
            placed.append((_object_id(receptacle, object_type, rng, taken), object_type, receptacle))
    return placed


def problem_pddl(name: str, scene: Scene, goal: Goal, placed: list[tuple[str, str, str]],
                 start: str) -> str:
    """The PDDL problem in the shape of ALFWorld's ``initial_state.pddl``, ending with goal_library's goal."""
    location = {r.id: r.location for r in scene.receptacles}
    rtypes = sorted(scene.receptacle_types() | {goal.parent_target} - {""})
    otypes = sorted({t for _, t, _ in placed} | {goal.object_target, goal.toggle_target} - {""})
    locations = sorted(set(location.values()) | {start})
    objects = ["agent1 - agent"] + [f"{mangle(oid)} - object" for oid, _, _ in placed]
    objects += [f"{t}Type - otype" for t in otypes] + [f"{mangle(r.id)} - receptacle" for r in scene.receptacles]
    objects += [f"{t}Type - rtype" for t in rtypes] + [f"{mangle(loc)} - location" for loc in locations]
    init = [f"(atLocation agent1 {mangle(start)})"]
    for r in scene.receptacles:
        init.append(f"(receptacleType {mangle(r.id)} {r.type}Type)")
        init.append(f"(receptacleAtLocation {mangle(r.id)} {mangle(r.location)})")
        if r.type in constants.OPENABLE_CLASS_SET:
            init.append(f"(openable {mangle(r.id)})")
    properties = {"Cleanable": "cleanable", "Heatable": "heatable", "Coolable": "coolable",
                  "Toggleable": "toggleable", "Sliceable": "sliceable"}
    for oid, otype, rid in placed:
        o = mangle(oid)
        init += [f"(objectType {o} {otype}Type)", f"(inReceptacle {o} {mangle(rid)})",
                 f"(objectAtLocation {o} {mangle(location[rid])})"]
        if otype != "DeskLamp":
            init.append(f"(pickupable {o})")
        if otype in constants.MOVABLE_RECEPTACLES_SET:
            init.append(f"(isReceptacleObject {o})")
        init += [f"({fact} {o})" for group, fact in properties.items() if otype in constants.VAL_ACTION_OBJECTS[group]]
    init += [f"(canContain {r}Type {o}Type)" for r in rtypes for o in otypes
             if o in constants.VAL_RECEPTACLE_OBJECTS.get(r, ())]
    goal_text = goal_library.gdict[goal.task_type]["pddl"].format(
        obj=goal.object_target, recep=goal.parent_target, toggle=goal.toggle_target, mrecep="").replace("#", "-")
    return (f"(define (problem {name})\n(:domain alfred)\n(:objects\n" + "\n".join(objects) + "\n)\n(:init\n"
            + "\n".join(init) + "\n)\n" + goal_text.strip() + "\n")


def goal_description(goal: Goal, rng: random.Random) -> str:
    """goal_library's templated goal text, filled as ALFWorld fills it (lowercased type names).

    >>> goal_description(Goal("pick_and_place_simple", "Mug", "Desk"), random.Random(0))
    'put some mug on desk'
    """
    template = rng.choice(goal_library.gdict[goal.task_type]["templates"])
    return template.format(obj=goal.object_target.lower(), recep=goal.parent_target.lower(),
                           toggle=goal.toggle_target.lower(), mrecep="")


def _start_location(scene: Scene, rng: random.Random) -> str:
    used = {r.location for r in scene.receptacles}
    while True:
        loc = f"loc|{rng.randint(-20, 20)}|{rng.randint(-20, 20)}|{rng.randrange(4)}|30"
        if loc not in used:
            return loc


def make_game(scene: Scene, task_type: str, split: str, trial: str,
              rng: random.Random) -> GameFile | None:
    """One game of ``task_type`` in ``scene``, or None when the scene cannot pose it or the planner fails."""
    goal = draw_goal(scene, task_type, rng)
    if goal is None:
        return None
    placed = place_objects(scene, goal, rng)
    problem = problem_pddl(f"plan_{trial}", scene, goal, placed, _start_location(scene, rng))
    description = goal_description(goal, rng)
    domain, grammar = game_logic(DEFAULT)
    data = {"pddl_domain": domain, "grammar": with_goal(grammar, description), "pddl_problem": problem,
            "solvable": None, "walkthrough": None}
    game = Game(data, plan=True)
    try:
        game.reset()
        if game.won:
            return None  # met before the agent moves
        plan = game.plan  # solvable when the planner finds a plan, as alfworld-generate's planner expert decides
    finally:
        game.close()
    if not plan:
        return None
    data.update(solvable=True, walkthrough=plan)
    traj = {"task_id": trial, "task_type": task_type, "pddl_params": goal.params(),
            "scene": {"floor_plan": f"FloorPlan{scene.number}", "scene_num": scene.number},
            "turk_annotations": {"anns": []},
            "agentinstruct": {"generator": "agentinstruct.builders.alfworld.generate", "goal_text": description}}
    path = f"json_2.1.1/{split}/{goal.folder(scene.number)}/{trial}"
    return GameFile(path, data, traj, problem)


@dataclass(frozen=True)
class _Slot:
    """One game to make: its task type, index, split and the floor plans it may use."""

    task_type: str
    index: int
    split: str
    scenes: tuple[int, ...]


def _attempt(slot: _Slot, seed: int, attempt: int, conn: Any) -> None:
    """In a child process: one try at the slot's game, sent back through ``conn`` (None when it fails)."""
    rng = random.Random(f"{seed}/{slot.task_type}/{slot.index}/{attempt}")
    trial = f"trial_T{seed:04d}{TASK_TYPES.index(slot.task_type)}_{slot.index:03d}{attempt:03d}"
    conn.send(make_game(load_scene(rng.choice(slot.scenes)), slot.task_type, slot.split, trial, rng))
    conn.close()


def _try(slot: _Slot, seed: int, attempt: int, timeout: float) -> tuple[Any, Any]:
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_attempt, args=(slot, seed, attempt, send), daemon=True)
    process.start()
    send.close()
    return process, receive


def generate(n_per_type: int = PER_TYPE, eval_per_type: int = EVAL_PER_TYPE, seed: int = SEED, *,
             task_types: tuple[str, ...] = TASK_TYPES, workers: int = 2,
             timeout: float = PLANNER_TIMEOUT) -> Iterator[GameFile]:
    """``n_per_type`` solvable games of each task type, the first ``eval_per_type`` of each in ``valid_unseen``
    on ``EVAL_SCENES``, the rest in ``train`` on the other floor plans; yielded in type and index order.

    Each try runs in a child process, ``workers`` at a time: the planner runs in C and cannot be interrupted, so a
    try it has not solved in ``timeout`` seconds is killed and counts as unsolvable (and the child's copy of
    fast-downward's library goes with it). Every try draws from its own seed (seed, type, index, try number), so the
    games do not depend on which try finishes first; they depend on the planner only through that timeout.
    """
    if eval_per_type > n_per_type:
        raise ValueError(f"eval_per_type ({eval_per_type}) is more than n_per_type ({n_per_type})")
    numbers = all_scenes()
    slots = []
    for task_type in task_types:
        for index in range(n_per_type):
            split = "valid_unseen" if index < eval_per_type else "train"
            pool = tuple(s for s in numbers if (s in EVAL_SCENES) == (split == "valid_unseen"))
            slots.append(_Slot(task_type, index, split, pool))
    attempts = {slot: 0 for slot in slots}
    done: dict[_Slot, GameFile] = {}
    waiting = list(slots)
    running: dict[_Slot, tuple[Any, Any, float]] = {}
    emitted = 0
    while emitted < len(slots):
        while waiting and len(running) < workers:
            slot = waiting.pop(0)
            process, receive = _try(slot, seed, attempts[slot], timeout)
            running[slot] = (process, receive, time.monotonic())
        for slot, (process, receive, started) in list(running.items()):
            game = None
            if receive.poll(0.05):
                try:
                    game = receive.recv()
                except EOFError:  # the child died without an answer (a crash in the planner)
                    game = None
            elif process.is_alive() and time.monotonic() - started < timeout:
                continue
            process.kill()
            process.join()
            receive.close()
            del running[slot]
            if game is not None:
                done[slot] = game
            else:
                attempts[slot] += 1
                if attempts[slot] >= MAX_TRIES:
                    raise RuntimeError(f"no solvable {slot.task_type} game in {MAX_TRIES} tries (seed {seed})")
                waiting.insert(0, slot)
        while emitted < len(slots) and slots[emitted] in done:
            yield done.pop(slots[emitted])
            emitted += 1


def write_tree(games: list[GameFile], out: Path) -> None:
    """Write games as ALFWorld's folder layout under ``out``."""
    for game in games:
        for name, text in game.files().items():
            target = out / game.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)


def write_archive(games: list[GameFile], out: Path) -> None:
    """Write games as a gzipped tar of ALFWorld's folder layout (fixed member times: same games, same bytes)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for game in sorted(games, key=lambda g: g.path):
            for name, text in sorted(game.files().items()):
                payload = text.encode()
                info = tarfile.TarInfo(f"{game.path}/{name}")
                info.size, info.mtime, info.mode = len(payload), 0, 0o644
                tar.addfile(info, io.BytesIO(payload))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(gzip.compress(buffer.getvalue(), compresslevel=9, mtime=0))


def example_turns(game: GameFile, grammar: str) -> list[dict[str, Any]]:
    """A one-shot example: the game played by the expert in ``grammar``, template thoughts, gpt turns untrained."""
    builder = AlfworldBuilder(grammar)
    builder._games[EXAMPLE_ORIGIN] = {game.path: game}
    task = Task(game.path, goal_of(game.data["grammar"]), "package",
                {"origin": EXAMPLE_ORIGIN, "path": game.path, "task_type": game.task_type,
                 "pddl_params": game.traj["pddl_params"]})
    actions = builder.reference_actions(task)
    env = builder.open_env(task)
    try:
        turns = [{"from": "human", "value": TASK_OPENING + env.reset(), "loss": None}]
        for action in actions:
            turns.append({"from": "gpt", "value": builder.render(builder.template_thought(task, action), action),
                          "loss": False})
            observation = env.step(action).observation
            if action is not actions[-1]:
                turns.append({"from": "human", "value": observation, "loss": None})
    finally:
        env.close()
    return turns


def make_examples(seed: int = EXAMPLE_SEED, candidates: int = 3, workers: int = 2
                  ) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Per grammar and task type, the example the expert solves in the fewest steps among ``candidates`` games
    generated with ``seed`` on training floor plans."""
    chosen: dict[str, GameFile] = {}
    for game in generate(candidates, 0, seed, workers=workers):
        best = chosen.get(game.task_type)
        if best is None or len(example_turns(game, DEFAULT)) < len(example_turns(best, DEFAULT)):
            chosen[game.task_type] = game
    return {grammar: {t: example_turns(chosen[t], grammar) for t in TASK_TYPES} for grammar in GRAMMARS}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m agentinstruct.builders.alfworld.generate",
                                     description="Generate ALFWorld games in ALFWorld's folder layout.")
    parser.add_argument("--n", type=int, default=PER_TYPE, help="games per task type (default %(default)s)")
    parser.add_argument("--eval", type=int, default=EVAL_PER_TYPE,
                        help="of them, games per task type in the valid_unseen evaluation part (default %(default)s)")
    parser.add_argument("--seed", type=int, default=SEED, help="generator seed (default %(default)s)")
    parser.add_argument("--out", type=Path, help="folder to write json_2.1.1/... into")
    parser.add_argument("--embedded", action="store_true", help=f"rewrite the package's archive ({EMBEDDED_GAMES})")
    parser.add_argument("--examples", action="store_true", help=f"rewrite the one-shot examples ({EXAMPLES})")
    args = parser.parse_args(argv)
    if args.examples:
        EXAMPLES.write_text(json.dumps(make_examples(), indent=1) + "\n")
        return
    if not args.out and not args.embedded:
        parser.error("give --out DIR, or --embedded to rewrite the package's games")
    started, games = time.monotonic(), []
    for game in generate(args.n, args.eval, args.seed):
        games.append(game)
        print(f"\r{len(games)}/{args.n * len(TASK_TYPES)} games", end="", file=sys.stderr, flush=True)
    elapsed = time.monotonic() - started
    print(f"\n{len(games)} games in {elapsed:.1f} s ({len(games) / elapsed:.2f} games/s)", file=sys.stderr)
    if args.out:
        write_tree(games, args.out)
    if args.embedded:
        write_archive(games, EMBEDDED_GAMES)


if __name__ == "__main__":
    main()
