"""ALFRED's floor plans as the alfworld wheel ships them: receptacles with their interaction poses, object types.

``alfworld/gen/layouts/FloorPlan{N}-openable.json`` maps a receptacle id (``Cabinet|+00.68|+00.50|-02.20``) to the
pose the agent stands in to use it (x, z, rotation, camera horizon); ``FloorPlan{N}-objects.json`` lists the object
types of the scene, receptacle types included. The pose becomes ALFWorld's location name ``loc|x/0.25|z/0.25|
rotation/90|horizon``. Some receptacle types of a scene (stove burners, the coffee machine, the garbage can) have
no entry in the openable file; they get ids and poses of their own, drawn from the scene's seed, so every
receptacle of the scene can be visited.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from alfworld.gen import constants

SCENE_TYPES: dict[str, range] = {"Kitchen": range(1, 31), "LivingRoom": range(201, 231),
                                 "Bedroom": range(301, 331), "Bathroom": range(401, 431)}
# Receptacle types that hold objects in ALFWorld's text games. Movable receptacles (bowl, mug, pan, ...) are
# objects there: the wheel's domain has no action that puts something into them.
STATIC_RECEPTACLES: frozenset[str] = frozenset(constants.RECEPTACLES - constants.MOVABLE_RECEPTACLES_SET)
# How many instances a receptacle type missing from the openable file gets (a kitchen has four burners).
EXTRA_COUNTS = {"StoveBurner": 4}


@dataclass(frozen=True)
class Receptacle:
    """One receptacle: ALFRED id (``Sink|...|SinkBasin`` for basins), its type, the location the agent uses it from."""

    id: str
    type: str
    location: str


@dataclass(frozen=True)
class Scene:
    """A floor plan: its number, room type, receptacles and the object types that can be placed in them."""

    number: int
    room: str
    receptacles: tuple[Receptacle, ...]
    object_types: tuple[str, ...]

    def receptacle_types(self) -> set[str]:
        return {r.type for r in self.receptacles}


def layouts_dir() -> Path:
    """The wheel's ``gen/layouts`` folder."""
    return Path(str(resources.files("alfworld.gen") / "layouts"))


def room_type(number: int) -> str:
    """ALFRED's room type of a floor plan number.

    >>> room_type(7), room_type(305)
    ('Kitchen', 'Bedroom')
    """
    for room, numbers in SCENE_TYPES.items():
        if number in numbers:
            return room
    raise ValueError(f"floor plan {number} is not one of ALFRED's 120 scenes")


def location_name(x: float, z: float, rotation: float, horizon: float) -> str:
    """ALFRED's location name for a pose (grid steps of 0.25 m, rotation in quarter turns).

    >>> location_name(0.0, -1.25, 180, 30)
    'loc|0|-5|2|30'
    """
    return f"loc|{round(x / constants.AGENT_STEP_SIZE)}|{round(z / constants.AGENT_STEP_SIZE)}|" \
           f"{round(rotation / 90) % 4}|{round(horizon)}"


def _receptacle_type(rid: str) -> str:
    # Basins are named after their sink or tub: Sink|x|y|z|SinkBasin is a SinkBasin.
    parts = rid.split("|")
    return parts[-1] if len(parts) == 5 else parts[0]


def _placeable(object_type: str, receptacle_types: set[str]) -> bool:
    return any(object_type in constants.VAL_RECEPTACLE_OBJECTS.get(r, ()) for r in receptacle_types)


@cache
def load_scene(number: int) -> Scene:
    """Floor plan ``number`` from the wheel's layouts.

    >>> scene = load_scene(1)
    >>> scene.room, sorted(scene.receptacle_types())[:4]
    ('Kitchen', ['Cabinet', 'CoffeeMachine', 'CounterTop', 'Drawer'])
    >>> 'Apple' in scene.object_types, 'Window' in scene.object_types
    (True, False)
    """
    folder = layouts_dir()
    poses = json.loads((folder / f"FloorPlan{number}-openable.json").read_text())
    types = json.loads((folder / f"FloorPlan{number}-objects.json").read_text())
    receptacles = [Receptacle(rid, _receptacle_type(rid), location_name(*pose)) for rid, pose in sorted(poses.items())]
    have = {r.type for r in receptacles}
    rng = random.Random(number)
    for rtype in sorted(set(types) & STATIC_RECEPTACLES - have):
        count = EXTRA_COUNTS.get(rtype, 1)
        while count:
            x, z = rng.randint(-12, 12) * 0.25, rng.randint(-12, 12) * 0.25
            rid = f"{rtype}|{x:+06.2f}|+00.90|{z:+06.2f}"
            if rtype.endswith("Basin"):  # ALFRED names a basin after its sink or tub: Sink|x|y|z|SinkBasin
                rid = f"{rtype[:-len('Basin')]}|{x:+06.2f}|+00.90|{z:+06.2f}|{rtype}"
            if all(r.id != rid for r in receptacles):
                receptacles.append(Receptacle(rid, rtype, location_name(x, z, rng.randrange(4) * 90, 30)))
                count -= 1
    rtypes = {r.type for r in receptacles}
    # Lamps are used where they stand; the object files list them, but no receptacle lists them as contents.
    objects = sorted(t for t in set(types) if t not in STATIC_RECEPTACLES
                     and (_placeable(t, rtypes) or t == "DeskLamp"))
    return Scene(number, room_type(number), tuple(receptacles), tuple(objects))


def all_scenes() -> list[int]:
    """The floor plan numbers the wheel ships (120).

    >>> len(all_scenes()), all_scenes()[:3]
    (120, [1, 2, 3])
    """
    return sorted(int(p.name[len("FloorPlan"):-len("-objects.json")]) for p in layouts_dir().glob("*-objects.json"))
