"""The reference shopper: an expert that decides from what the pages show, for ``--policy reference``.

It knows the instruction and its annotated parts (the goal's attributes, options and price bound: spans of the
instruction in WebShop's human goals), never the target product. It searches with the instruction's words (the
options stressed), drops the results over budget, opens the others in rank order, checks that the product offers
every wanted option and shows every wanted attribute (in the title, else on Features, else on Description), goes
back to the next result when it does not, then picks the options and buys. Ranking by the attributes the titles
show was tried and solved fewer goals: the options, which only the item page shows, are what most candidates lack.
Within WebShop's 10 rounds; a goal it cannot satisfy that way raises ``ValueError`` with the reason (the build
skips and counts it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .shop import END_BUTTON, PREV_PAGE, Page, ShopSession

MAX_ROUNDS = 10
_FILLER = frozenset("i im am looking for need want to buy find me a an the and in with that is which are choose "
                    "please some get".split())
_PRICE = re.compile(r"[\d.]+")


def search_query(instruction: str, options: Sequence[str] = ()) -> str:
    """The words the expert searches with: the instruction without its price clause and filler words, then the
    wanted options once more. The index holds each product's option list, so stressing the options ranks first
    the listings that offer them, which the results page does not show.

    >>> search_query("i need waterproof hiking boots in black, and price lower than 60.00 dollars", ["black"])
    'waterproof hiking boots black black'
    """
    text = instruction.split(", and price lower than")[0].lower()
    words = [w for w in re.findall(r"[\w.\-']+", text) if w not in _FILLER]
    return " ".join(words + [o.lower() for o in options])


def _price(tag: str) -> float:
    # A listing with a range ("$10.0 to $19.99") may cost up to its upper end.
    return max(float(x) for x in _PRICE.findall(tag))


def _results(page: Page) -> list[tuple[str, str, float]]:
    out, elements = [], page.elements
    for i, e in enumerate(elements):
        if e.role == "link" and i + 2 < len(elements):
            out.append((e.text, elements[i + 1].text, _price(elements[i + 2].text)))
    return out


def _pick_options(page: Page, wanted: list[str]) -> dict[str, str] | None:
    """Option group -> value for every wanted option the item page offers (the same value, else one that contains
    it, as "6.76 fl oz (pack of 1)" contains "6.76 fl oz"); None when one is not offered. The reward's looser match
    (colours reduced to a base colour: "sky blue" counts for "navy blue") is not used: a shopper would not."""
    offered = [(e.group, e.text) for e in page.elements if e.role == "option"]
    chosen: dict[str, str] = {}
    for want in (w.lower() for w in wanted):
        free = [(g, v) for g, v in offered if g not in chosen]
        match = ([(g, v) for g, v in free if v == want]
                 or [(g, v) for g, v in free if re.search(rf"(?<!\w){re.escape(want)}(?!\w)", v)] or [None])[0]
        if match is None:
            return None
        chosen[match[0]] = match[1]
    return chosen


def _text(page: Page) -> str:
    return " ".join(e.text for e in page.elements if e.role in ("text", "heading")).lower()


def shop_for(session: ShopSession, goal: dict[str, Any]) -> list[str]:
    """Shop in ``session`` (fresh, on the search page) for ``goal``; the actions taken, ending with Buy Now.

    Raises ValueError when no product it can see meets the goal within ``MAX_ROUNDS`` actions.
    """
    attributes = [a.lower() for a in goal["attributes"]]
    options = list(goal["goal_options"].values() if isinstance(goal["goal_options"], dict) else goal["goal_options"])
    actions: list[str] = []

    def act(action: str) -> Page:
        actions.append(action)
        session.step(action)
        return session.page()

    results = act(f"search[{search_query(session.instruction, options)}]")
    seen = _results(results)
    affordable = [r for r in seen if r[2] <= goal["price_upper"]]
    tried = 0
    for asin, title, _ in affordable:
        # Going back, opening the product, picking its options and buying: the fewest rounds this candidate needs.
        if len(actions) + (1 if tried else 0) + 2 + len(options) > MAX_ROUNDS:
            break
        if tried:
            act(f"click[{PREV_PAGE}]")
        tried += 1
        item = act(f"click[{asin}]")
        chosen = _pick_options(item, options)
        if chosen is None:
            continue
        missing = [a for a in attributes if a not in title.lower()]
        for sub in ("Features", "Description"):
            if not missing or len(actions) + 2 + len(chosen) + 1 > MAX_ROUNDS:
                break
            shown = _text(act(f"click[{sub}]"))
            missing = [a for a in missing if a not in shown]
            act(f"click[{PREV_PAGE}]")
        if missing:
            continue
        for value in chosen.values():
            act(f"click[{value}]")
        act(f"click[{END_BUTTON}]")
        return actions
    raise ValueError(f"webshop goal {goal['asin']}: none of the {len(seen)} results seen within {MAX_ROUNDS} rounds "
                     f"offers options {options} and shows attributes {attributes} under ${goal['price_upper']}")
