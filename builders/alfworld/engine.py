"""One ALFWorld game played on the real engine: TextWorld's PDDL environment with ALFWorld's name demangler.

A game is the JSON of a ``game.tw-pddl`` file (``pddl_domain``, ``grammar``, ``pddl_problem``, ...). ``Game``
plays it with the chosen grammar: the grammar and domain of ``grammar.game_logic`` with the game's own goal text,
so a game written for either ALFWorld version reads in either text.

TextWorld parses grammars with one module-level parser (tatsu, not reentrant) and translates a game's PDDL to fast-downward's SAS form twice each time it builds a state (on ``load`` and
again on every ``reset``), through module-level translator options and ``sys.argv``, so two translations in two
threads can mix their options. ``fast_downward.pddl2sas`` is therefore wrapped, once, in a lock and a small memo:
the translation is a pure function of domain and problem, so a game reset or replayed (the reference policy plays
each game twice) reuses it. Games are loaded, reset and stepped under one lock (``_play``), so episodes in the
engine's worker threads never parse or translate at the same time; the engine is pure Python under the GIL, so
the lock costs no parallelism.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from typing import Any

import fast_downward
import textworld
from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
from textworld.envs import PddlEnv

from .grammar import DEFAULT, game_logic, goal_of, with_goal

class GameError(ValueError):
    """A game the engine cannot play: its PDDL does not translate."""


_TRANSLATIONS = 16  # memoised (domain, problem, optimize) translations: a few MB each
_translate_lock = threading.Lock()
_translated: OrderedDict[tuple[str, str, bool], Any] = OrderedDict()
_pddl2sas = fast_downward.pddl2sas


def _memo_pddl2sas(domain: str, problem: str, verbose: bool = False, optimize: bool = False) -> Any:
    key = (domain, problem, optimize)
    with _translate_lock:
        if key not in _translated:
            argv = sys.argv  # the translator overwrites sys.argv for its option parser
            try:
                _translated[key] = _pddl2sas(domain, problem, verbose=verbose, optimize=optimize)
            except SystemExit as exc:  # the translator's parser exits the process on some bad problems
                raise GameError(f"fast-downward cannot read the game's PDDL (exit status {exc.code}); its "
                                "message is printed above") from None
            except Exception as exc:  # and fails with whatever its parser hit on others
                raise GameError(f"fast-downward cannot read the game's PDDL: {type(exc).__name__}: {exc}") from exc
            finally:
                sys.argv = argv
            while len(_translated) > _TRANSLATIONS:
                _translated.popitem(last=False)
        _translated.move_to_end(key)
        return _translated[key]


fast_downward.pddl2sas = _memo_pddl2sas

_play = threading.Lock()

# Each PddlEnv loads a private copy of fast-downward's library that is never unloaded, so engines are reused: a
# closed Game hands its engine back here, keyed by what it reports.
_idle: dict[bool, list[Any]] = {False: [], True: []}
_idle_lock = threading.Lock()


def _engine(plan: bool) -> Any:
    with _idle_lock:
        if _idle[plan]:
            return _idle[plan].pop()
    infos = textworld.EnvInfos(admissible_commands=True, won=True, facts=True, policy_commands=plan)
    return AlfredDemangler(PddlEnv(infos), shuffle=False)


def playable(game: dict[str, Any], grammar: str = DEFAULT) -> dict[str, Any]:
    """The game data with its goal text in ``grammar``'s text and domain (the game's problem unchanged)."""
    domain, text = game_logic(grammar)
    return {**game, "pddl_domain": domain, "grammar": with_goal(text, goal_of(game["grammar"]))}


class Game:
    """A live game: ``reset`` gives the opening text, ``step`` a command's feedback; ``won``, ``admissible`` and
    ``facts`` describe the state after the last call.

    Example:
        >>> from agentinstruct.builders.alfworld.games import embedded_games
        >>> game = Game(embedded_games("train")[0].data)
        >>> game.reset().startswith("-= Welcome to TextWorld, ALFRED! =-")
        True
        >>> game.step("inventory")
        'You are not carrying anything.'
    """

    def __init__(self, data: dict[str, Any], grammar: str = DEFAULT, *, plan: bool = False) -> None:
        self._plan = plan
        self._env: Any = _engine(plan)
        with _play:
            self._env.load(playable(data, grammar))
        self._state: Any = None

    def reset(self) -> str:
        with _play:
            self._state = self._env.reset()
        return str(self._state.feedback)

    def step(self, command: str) -> str:
        with _play:
            self._state, _, _ = self._env.step(command)
        return str(self._state.feedback)

    @property
    def won(self) -> bool:
        return bool(self._state["won"])

    @property
    def admissible(self) -> list[str]:
        return list(self._state["admissible_commands"])

    @property
    def facts(self) -> list[Any]:
        """The state's facts with demangled names (``inreceptacle(apple 1: object, fridge 1: receptacle)``)."""
        return list(self._state["facts"])

    @property
    def plan(self) -> list[str]:
        """The planner's commands from this state to the goal (``plan=True`` only; the planner sees everything)."""
        return list(self._state["policy_commands"] or [])

    def close(self) -> None:
        """Hand the engine back for the next game (its state is rebuilt by the next ``load``)."""
        if self._env is not None:
            with _idle_lock:
                _idle[self._plan].append(self._env)
            self._env = None
