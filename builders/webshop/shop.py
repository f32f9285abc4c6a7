"""The shop's page flow, as WebShop's text environment (``envs/web_agent_text_env.py``) runs it.

A ``Shop`` holds a catalogue and its search engine; a ``ShopSession`` is one shopper with one goal. Pages are
lists of ``Element`` (text with a role: heading, button, product link, option, ...), so the text observation
(WebShop's "simple" text mode: the visible strings joined by `` [SEP] ``) and the HTML pages of ``agentinstruct
serve webshop`` are two views of the same page, and a click means the same in both.

The flow, as WebShop's: search page -> results (``Page n (Total results: t)``, ``< Prev`` after page 1, ``Next >``,
10 products a page as ASIN, title, price) -> item page (options by group, title, price, rating, Description,
Features, Reviews, Buy Now) -> sub pages (``< Prev`` back to the item) -> done, where Buy Now scores the purchase.
Actions are ``search[keywords]`` (from any page, as WebShop allows) and ``click[label]`` with a label of the page
(case does not matter); anything else changes nothing and the page is shown again, as WebShop answers it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from .catalogue import Catalogue
from .reward import get_reward
from .search import SEARCH_RETURN_N, SearchEngine

PRODUCT_WINDOW = 10
END_BUTTON, NEXT_PAGE, PREV_PAGE, BACK_TO_SEARCH = "Buy Now", "Next >", "< Prev", "Back to Search"
SUB_PAGES = ("Description", "Features", "Reviews")
SEP = " [SEP] "

_ACTION = re.compile(r"(.+)\[(.+)\]", re.DOTALL)


@dataclass(frozen=True)
class Element:
    """One visible string of a page. ``role``: heading, instruction, search (the search box's button), button,
    link (a product's ASIN), text, price, option-group, option (``group`` names its option group)."""

    role: str
    text: str
    group: str = ""


@dataclass(frozen=True)
class Page:
    """A page: its kind (search, results, item, description, features, reviews, done) and its elements."""

    kind: str
    elements: tuple[Element, ...]

    def text(self) -> str:
        """WebShop's simple text observation: the strings joined by `` [SEP] ``."""
        return SEP.join(e.text for e in self.elements)

    def clickables(self) -> dict[str, Element]:
        """Click labels -> elements, as WebShop's ``get_available_actions``: buttons and product links by their
        lowercased text, options by their value."""
        found = {e.text.lower(): e for e in self.elements if e.role in ("search", "button", "link")}
        found.update({e.text: e for e in self.elements if e.role == "option"})
        return found


def parse_action(action: str) -> tuple[str, str | None]:
    """WebShop's action parsing: ``name[argument]``, else the whole string as a name with no argument.

    >>> parse_action("click[Buy Now]"), parse_action("look around")
    (('click', 'Buy Now'), ('look around', None))
    """
    m = _ACTION.match(action)
    return (m.group(1), m.group(2)) if m else (action, None)


class Shop:
    """A catalogue with its search engine; sessions share it (searches are cached: shoppers repeat queries)."""

    def __init__(self, catalogue: Catalogue, engine: SearchEngine) -> None:
        self.catalogue = catalogue
        self.engine = engine
        self._search = functools.lru_cache(maxsize=4096)(self._ranked)

    def _ranked(self, query: str) -> tuple[str, ...]:
        return tuple(a for a in self.engine.search(query, SEARCH_RETURN_N) if a in self.catalogue.by_asin)

    def search(self, query: str) -> tuple[str, ...]:
        """The ASINs a query returns, best first (at most 50)."""
        return self._search(query)

    def session(self, goal: dict[str, Any]) -> "ShopSession":
        """A new shopper for ``goal`` (one of ``catalogue.goals``), on the search page."""
        return ShopSession(self, goal)


@dataclass
class ShopSession:
    """One shopper's state, moved by ``step`` exactly as WebShop's server moves it."""

    shop: Shop
    goal: dict[str, Any]
    kind: str = "search"
    keywords: str = ""
    page_no: int = 1
    asin: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    done: bool = False
    reward: float = 0.0
    reward_info: dict[str, Any] = field(default_factory=dict)

    @property
    def instruction(self) -> str:
        return self.goal["instruction_text"]

    def _head(self) -> list[Element]:
        return [Element("instruction", "Instruction:"), Element("instruction", self.instruction),
                Element("button", BACK_TO_SEARCH)]

    def page(self) -> Page:
        """The page the shopper is on."""
        if self.kind == "search":
            return Page("search", (Element("heading", "WebShop"), Element("instruction", "Instruction:"),
                                   Element("instruction", self.instruction), Element("search", "Search")))
        if self.kind == "results":
            ranked = self.shop.search(self.keywords)
            shown = ranked[(self.page_no - 1) * PRODUCT_WINDOW:self.page_no * PRODUCT_WINDOW]
            elements = self._head() + [Element("heading", f"Page {self.page_no} (Total results: {len(ranked)})")]
            if self.page_no > 1:
                elements.append(Element("button", PREV_PAGE))
            elements.append(Element("button", NEXT_PAGE))
            for asin in shown:
                product = self.shop.catalogue.by_asin[asin]
                elements += [Element("link", asin), Element("text", product["Title"]),
                             Element("price", product["Price"])]
            return Page("results", tuple(elements))
        if self.kind == "done":
            return Page("done", (Element("heading", "Thank you for shopping with us!"),
                                 Element("heading", "Your score (min 0.0, max 1.0)"),
                                 Element("text", str(self.reward))))
        product = self.shop.catalogue.by_asin[self.asin]
        elements = self._head() + [Element("button", PREV_PAGE)]
        if self.kind == "item":
            for name, values in product["options"].items():
                elements.append(Element("option-group", name))
                elements += [Element("option", value, group=name) for value in values]
            elements += [Element("heading", product["Title"]), Element("price", f"Price: {product['Price']}"),
                         Element("text", f"Rating: {product['Rating']}")]
            elements += [Element("button", name) for name in SUB_PAGES] + [Element("button", END_BUTTON)]
        elif self.kind == "description":
            elements.append(Element("text", product["Description"]))
        elif self.kind == "features":
            elements += [Element("text", bullet) for bullet in product["BulletPoints"]]
        else:  # reviews
            for review in product["Reviews"]:
                elements += [Element("heading", f'"{review["title"]}"'), Element("text", str(review["score"])),
                             Element("text", review["body"])]
        return Page(self.kind, tuple(elements))

    def observation(self) -> str:
        """The current page as WebShop's text observation."""
        return self.page().text()

    def step(self, action: str) -> tuple[str, float, bool]:
        """Carry out ``search[...]`` or ``click[...]``: (observation, reward, done), WebShop's ``step`` without info.
        An action that is not valid here leaves the page as it is (reward 0, not done)."""
        if self.done:
            return self.observation(), 0.0, True
        name, argument = parse_action(action)
        argument = argument.lower() if argument is not None else None
        if name == "search" and argument:
            self._search(argument)
        elif name == "click" and argument is not None and argument != "search":
            target = self.page().clickables().get(argument)
            if target is not None:
                self._click(argument, target)
        return self.observation(), (self.reward if self.done else 0.0), self.done

    def _search(self, keywords: str, page_no: int = 1) -> None:
        self.kind, self.keywords, self.page_no = "results", keywords, page_no
        self.asin, self.options = None, {}

    def _click(self, label: str, target: Element) -> None:
        if label == END_BUTTON.lower():
            self._buy()
        elif label == BACK_TO_SEARCH.lower():
            self.kind, self.keywords, self.page_no, self.asin, self.options = "search", "", 1, None, {}
        elif label == NEXT_PAGE.lower() and self.kind == "results":
            self._search(self.keywords, self.page_no + 1)
        elif label == PREV_PAGE.lower() and self.kind == "results":
            self._search(self.keywords, self.page_no - 1)
        elif label == PREV_PAGE.lower() and self.kind in ("description", "features", "reviews"):
            self.kind = "item"
        elif label == PREV_PAGE.lower() and self.kind == "item":
            self._search(self.keywords, self.page_no)
        elif label in (s.lower() for s in SUB_PAGES):
            self.kind = label
        elif target.role == "link":
            self.kind, self.asin = "item", label.upper()
        elif target.role == "option":
            self.options[target.group] = label

    def _buy(self) -> None:
        product = self.shop.catalogue.by_asin[self.asin]
        price = self.shop.catalogue.prices[self.asin]
        self.reward, self.reward_info = get_reward(product, self.goal, price=price, options=self.options,
                                                   verbose=True)
        self.kind, self.done = "done", True
