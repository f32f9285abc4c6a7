"""Products and goals from WebShop's own files, read as WebShop's ``engine.load_products`` and ``goal.get_goals``
read them, so a user with WebShop's real data gets WebShop's goals in WebShop's order.

Files (plain JSON or gzipped): products as in ``items_shuffle*.json``, attribute annotations as in
``items_ins_v2*.json`` and human instructions as in ``items_human_ins.json`` (a dict keyed by ASIN). The package's
embedded catalogue (``generate.py``) uses the same formats and this same loader.

Goals are WebShop's human goals: one per instruction with at least one attribute, a price bound drawn from the two
of the next four multiples of 10 above the price, then shuffled with ``random.seed(233)``, so goal n here is goal
n in WebShop and AgentBench (the shuffle depends only on the number of goals). WebShop draws price bounds (and
prices of products listed with a price range) from Python's unseeded global generator, so its bounds change from
run to run; here they come from a generator seeded with ``PRICE_SEED``, so a build is reproducible.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .reward import PRICE_RANGE

GOAL_SHUFFLE_SEED = 233
PRICE_SEED = 0
NO_PRICE_BOUND = 1000000
"""WebShop's price bound for a goal whose product has fewer than two multiples of 10 above it."""


class CatalogueError(ValueError):
    """A product or instruction file that does not hold what WebShop's loader expects (names file, record, field)."""


def read_json(path: Path) -> Any:
    """A JSON file, gzipped when its name ends in .gz; a clear error when it cannot be read."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        return json.loads(raw)
    except FileNotFoundError:
        raise CatalogueError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise CatalogueError(f"{path}: not readable JSON: {exc}") from None


def _field(path: Path, record: Any, item: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in item:
        raise CatalogueError(f"{path}: record {record}: missing field {name!r}")
    value = item[name]
    if not isinstance(value, kind):
        raise CatalogueError(f"{path}: record {record}: field {name!r} must be {_kind_name(kind)}, "
                             f"got {type(value).__name__}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def parse_pricing(text: str | None) -> tuple[list[float], str]:
    """WebShop's reading of a listing's price text: (prices, the tag the page shows).

    >>> parse_pricing("$12.50"), parse_pricing("$10.00 - $19.99"), parse_pricing(None)
    (([12.5], '$12.5'), ([10.0, 19.99], '$10.0 to $19.99'), ([100.0], '$100.0'))
    """
    if not text:
        return [100.0], "$100.0"
    pricing = [float(Decimal(re.sub(r"[^\d.]", "", price))) for price in text.split("$")[1:]]
    if len(pricing) == 1:
        return pricing, f"${pricing[0]}"
    return pricing[:2], f"${pricing[0]} to ${pricing[1]}"


def _product(path: Path, index: int, raw: dict[str, Any], attributes: dict[str, Any]) -> dict[str, Any]:
    """One listing in the shape WebShop's engine gives it (Title, Description, BulletPoints, options, Price, ...)."""
    asin = raw["asin"]
    record = f"{index} (asin {asin})"
    for name in ("name", "category", "query", "product_category"):
        _field(path, record, raw, name, str)
    bullets = raw.get("small_description", "")
    options: dict[str, list[str]] = {}
    for name, contents in (raw.get("customization_options") or {}).items():
        if contents is None:
            continue
        if not isinstance(contents, list) or not all(isinstance(c, dict) and isinstance(c.get("value"), str)
                                                     for c in contents):
            raise CatalogueError(f"{path}: record {record}: field 'customization_options.{name}' must be a list "
                                 "of {\"value\": str, \"image\": ...}")
        options[name.lower()] = [c["value"].strip().replace("/", " | ").lower() for c in contents]
    try:
        pricing, price_tag = parse_pricing(raw.get("pricing"))
    except InvalidOperation:
        raise CatalogueError(f"{path}: record {record}: field 'pricing' is not a price: {raw.get('pricing')!r}") \
            from None
    reviews = [{"title": r.get("title", ""), "score": r.get("score", r.get("stars", 0)),
                "body": r.get("body", r.get("review", ""))} for r in raw.get("reviews") or []]
    annotated = attributes.get(asin) or {}
    return {
        "asin": asin,
        "name": raw["name"],
        "category": raw["category"],
        "query": raw["query"].lower().strip(),
        "product_category": raw["product_category"],
        "Title": raw["name"],
        "Description": raw.get("full_description") or "",
        "BulletPoints": bullets if isinstance(bullets, list) else [bullets],
        "Reviews": reviews,
        "Rating": raw.get("average_rating", "N.A."),
        "pricing": pricing,
        "Price": price_tag,
        "options": options,
        "Attributes": annotated["attributes"] if "attributes" in annotated else ["DUMMY_ATTR"],
        "MainImage": (raw.get("images") or [None])[0],
    }


@dataclass
class Catalogue:
    """Products (WebShop's engine shape), their prices, and the shuffled human goals."""

    products: list[dict[str, Any]]
    goals: list[dict[str, Any]]
    prices: dict[str, float]
    by_asin: dict[str, dict[str, Any]] = field(init=False)
    origin: str = "files"

    def __post_init__(self) -> None:
        self.by_asin = {p["asin"]: p for p in self.products}


def load_catalogue(products: Path, attributes: Path, instructions: Path, origin: str = "files") -> Catalogue:
    """Read WebShop's three files; skip listings as WebShop does (asin 'nan' or longer than 10, repeats).

    >>> from .generate import DATA, FILES
    >>> c = load_catalogue(*(DATA / FILES[k] for k in ("products", "attributes", "instructions")))
    >>> len(c.products), len(c.goals), c.goals[0]["instruction_text"].endswith("dollars")
    (2400, 400, True)
    """
    raw_products = read_json(products)
    if not isinstance(raw_products, list):
        raise CatalogueError(f"{products}: expected a list of products, got {type(raw_products).__name__}")
    raw_attributes = read_json(attributes)
    raw_instructions = read_json(instructions)
    for path, value in ((attributes, raw_attributes), (instructions, raw_instructions)):
        if not isinstance(value, dict):
            raise CatalogueError(f"{path}: expected an object keyed by ASIN, got {type(value).__name__}")
    seen: set[str] = set()
    items: list[dict[str, Any]] = []
    for index, raw in enumerate(raw_products):
        if not isinstance(raw, dict):
            raise CatalogueError(f"{products}: record {index}: expected an object, got {type(raw).__name__}")
        asin = _field(products, index, raw, "asin", str)
        if asin == "nan" or len(asin) > 10 or asin in seen:
            continue
        seen.add(asin)
        items.append(_product(products, index, raw, raw_attributes))
    rng = random.Random(PRICE_SEED)
    prices = {p["asin"]: (p["pricing"][0] if len(p["pricing"]) == 1 else rng.uniform(*p["pricing"][:2]))
              for p in items}
    goals = human_goals(items, prices, raw_instructions, instructions, rng)
    random.Random(GOAL_SHUFFLE_SEED).shuffle(goals)
    return Catalogue(items, goals, prices, origin=origin)


def human_goals(products: list[dict[str, Any]], prices: dict[str, float], instructions: dict[str, Any],
                path: Path, rng: random.Random) -> list[dict[str, Any]]:
    """WebShop's ``get_human_goals``: a goal per instruction with attributes, in product order, before the shuffle."""
    goals: list[dict[str, Any]] = []
    for product in products:
        asin = product["asin"]
        entries = instructions.get(asin)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise CatalogueError(f"{path}: record {asin}: expected a list of instructions")
        for n, entry in enumerate(entries):
            record = f"{asin}[{n}]"
            if not isinstance(entry, dict):
                raise CatalogueError(f"{path}: record {record}: expected an object")
            text = _field(path, record, entry, "instruction", str)
            attributes = _field(path, record, entry, "instruction_attributes", list)
            options = _field(path, record, entry, "instruction_options", (list, dict))
            if len(attributes) == 0:
                continue  # WebShop skips these ("skipped" in its log)
            bounds = [p for p in PRICE_RANGE if p > prices[asin]][:4]
            if len(bounds) >= 2:
                _, price_upper = sorted(rng.sample(bounds, 2))
                price_text = f", and price lower than {price_upper:.2f} dollars"
            else:
                price_upper, price_text = NO_PRICE_BOUND, ""
            goals.append({
                "asin": asin,
                "category": product["category"],
                "query": product["query"],
                "name": product["name"],
                "product_category": product["product_category"],
                "instruction_text": text.strip(".") + price_text,
                "attributes": attributes,
                "price_upper": price_upper,
                "goal_options": options,
                "weight": 1,
            })
    return goals
