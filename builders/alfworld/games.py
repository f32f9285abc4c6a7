"""ALFWorld game files in ALFWorld's own layout: read from a folder (the real games, as ``alfworld-download``
writes them) or from the package's archive of generated games.

The layout is ``json_2.1.1/{train,valid_seen,valid_unseen}/<task_type>-<...>/<trial>/`` with ``game.tw-pddl``
(JSON: ``pddl_domain``, ``grammar``, ``pddl_problem``, ``solvable``, ``walkthrough``) and ``traj_data.json``
(``task_type``, ``pddl_params``, ...). Games are collected as ALFWorld's own loader collects them: a folder with a
``traj_data.json``, of one of the six task types, with a ``game.tw-pddl`` marked ``solvable``; ``movable`` and
``Sliced`` tasks are left out (ALFWorld's text games do not support them).
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

TASK_TYPES: tuple[str, ...] = ("pick_and_place_simple", "look_at_obj_in_light", "pick_clean_then_place_in_recep",
                               "pick_heat_then_place_in_recep", "pick_cool_then_place_in_recep",
                               "pick_two_obj_and_place")
"""ALFWorld's six text-game task types, in its order (``alfred_tw_env.TASK_TYPES``)."""
SPLITS: tuple[str, ...] = ("train", "valid_seen", "valid_unseen")
EVAL_SPLITS: frozenset[str] = frozenset({"valid_seen", "valid_unseen"})
EMBEDDED_GAMES = Path(__file__).parent / "data" / "games.tar.gz"
_GAME_KEYS = ("pddl_domain", "grammar", "pddl_problem")


class GameFileError(ValueError):
    """A game folder that cannot be played; the message names the file and the field."""


@dataclass(frozen=True)
class GameFile:
    """One game: its folder in ALFWorld's layout (``json_2.1.1/train/.../trial_...``), the ``game.tw-pddl`` and
    ``traj_data.json`` contents, and the ``initial_state.pddl`` text."""

    path: str
    data: dict[str, Any]
    traj: dict[str, Any]
    initial_state: str = ""

    @property
    def split(self) -> str | None:
        """The ALFWorld split the folder lies in, or None outside the official layout."""
        return next((part for part in PurePosixPath(self.path).parts if part in SPLITS), None)

    @property
    def task_type(self) -> str:
        return str(self.traj["task_type"])

    def files(self) -> dict[str, str]:
        """The folder's files as ALFWorld writes them."""
        files = {"game.tw-pddl": json.dumps(self.data), "traj_data.json": json.dumps(self.traj, indent=2)}
        if self.initial_state:
            files["initial_state.pddl"] = self.initial_state
        return files


def _load_json(text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise GameFileError(f"{where}: not JSON ({e})") from None
    if not isinstance(value, dict):
        raise GameFileError(f"{where}: expected a JSON object, found {type(value).__name__}")
    return value


def _game(path: str, read: Any, names: set[str]) -> GameFile | None:
    """The game in folder ``path`` (``read(name)`` gives a file's text), or None when ALFWorld's loader skips it."""
    if "movable" in path or "Sliced" in path:
        return None
    traj = _load_json(read("traj_data.json"), f"{path}/traj_data.json")
    task_type = traj.get("task_type")
    if not isinstance(task_type, str):
        raise GameFileError(f"{path}/traj_data.json: field task_type: missing or not a string")
    if task_type not in TASK_TYPES or "game.tw-pddl" not in names:
        return None
    data = _load_json(read("game.tw-pddl"), f"{path}/game.tw-pddl")
    for key in _GAME_KEYS:
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise GameFileError(f"{path}/game.tw-pddl: field {key}: missing or empty")
    if "solvable" not in data:
        raise GameFileError(f"{path}/game.tw-pddl: field solvable: missing (run alfworld-generate on the folder)")
    if not data["solvable"]:
        return None
    initial = read("initial_state.pddl") if "initial_state.pddl" in names else ""
    return GameFile(path, data, traj, initial)


def read_folder(root: Path) -> list[GameFile]:
    """The playable games under ``root``: ALFWorld's ``json_2.1.1`` folder or any folder inside it, in path order.
    Paths are kept from ``json_2.1.1`` on when the folder lies inside it, so a game has the same id wherever the
    user keeps the download.

    >>> import tempfile
    >>> from agentinstruct.builders.alfworld.generate import write_tree
    >>> root = Path(tempfile.mkdtemp())
    >>> write_tree(embedded_games("train")[:2], root)
    >>> [g.path.split("/")[:2] for g in read_folder(root / "json_2.1.1" / "train")]
    [['json_2.1.1', 'train'], ['json_2.1.1', 'train']]
    """
    root = Path(root)
    if not root.is_dir():
        raise GameFileError(f"{root}: not a folder of ALFWorld games")
    games = []
    for traj in sorted(root.rglob("traj_data.json")):
        folder = traj.parent.resolve()
        parts = folder.parts
        rel = "/".join(parts[parts.index("json_2.1.1"):]) if "json_2.1.1" in parts else \
            folder.relative_to(root.resolve()).as_posix()
        names = {p.name for p in folder.iterdir()}
        game = _game(rel, lambda name: (folder / name).read_text(), names)
        if game is not None:
            games.append(game)
    return games


def read_archive(archive: Path) -> list[GameFile]:
    """The playable games in a gzipped tar of ALFWorld's layout (the package's generated set), in path order."""
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(Path(archive).read_bytes()))) as tar:
        members = {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    folders: dict[str, set[str]] = {}
    for name in members:
        folder, _, leaf = name.rpartition("/")
        folders.setdefault(folder, set()).add(leaf)
    games = [_game(folder, lambda leaf, f=folder: members[f"{f}/{leaf}"], names)
             for folder, names in sorted(folders.items()) if "traj_data.json" in names]
    return [g for g in games if g is not None]


@cache
def _embedded() -> tuple[GameFile, ...]:
    return tuple(read_archive(EMBEDDED_GAMES))


def embedded_games(split: str | None = None) -> list[GameFile]:
    """The package's generated games, all or one split's (``train``; ``valid_unseen`` is the evaluation part).

    >>> {t: sum(g.task_type == t for g in embedded_games("train")) >= 20 for t in TASK_TYPES}  # doctest: +ELLIPSIS
    {'pick_and_place_simple': True, 'look_at_obj_in_light': True, ...}
    """
    return [g for g in _embedded() if split is None or g.split == split]
