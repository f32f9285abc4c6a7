"""The embedded catalogue: products and shopping instructions generated from templates, in WebShop's file formats.

WebShop's products are scraped listings that may not be redistributed, so the package ships a catalogue written
for it: twelve departments of four product types each, every product with a made-up brand, three attributes, two
or three option groups (colour, size, pack, flavour, ...) and a price, written out as WebShop's own files so that
the same loader reads them and the user's real ones:

- ``items_shuffle.json.gz``: products as in WebShop's ``items_shuffle*.json`` (asin, name, full_description,
  small_description, pricing, customization_options, category, query, product_category, images; plus
  average_rating and reviews, which WebShop keeps in a separate reviews file and the loader reads when present);
- ``items_ins_v2.json.gz``: attribute annotations keyed by ASIN, as in ``items_ins_v2*.json``;
- ``items_human_ins.json.gz``: instructions keyed by ASIN, as in ``items_human_ins.json`` (instruction,
  instruction_attributes, instruction_options), for one product in ``INSTRUCTED_EVERY``.

Everything comes from one seeded ``random.Random``, so ``python -m agentinstruct.builders.webshop.generate DIR``
writes the same bytes every time (gzip with mtime 0). All wording is this package's own.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SEED = 20261201
PRODUCTS_PER_TYPE = 50
INSTRUCTED_EVERY = 6
"""One product in this many gets a human-style instruction (a goal)."""

DATA = Path(__file__).parent / "data"
FILES = {"products": "items_shuffle.json.gz", "attributes": "items_ins_v2.json.gz",
         "instructions": "items_human_ins.json.gz"}


@dataclass(frozen=True)
class Kind:
    """A product type: its name in titles, the search term it was 'listed' under, and its price range."""

    noun: str
    query: str
    leaf: str
    price: tuple[float, float]


@dataclass(frozen=True)
class Department:
    """A dozen of these make the catalogue: category path, product types, attribute phrases, option groups."""

    category: str
    path: str
    kinds: tuple[Kind, ...]
    attributes: tuple[str, ...]
    options: dict[str, tuple[str, ...]]
    styles: tuple[str, ...]


COLORS = ("black", "white", "navy blue", "forest green", "charcoal grey", "burgundy", "sand beige", "sky blue",
          "coral pink", "olive", "mustard yellow", "slate")
APPAREL_SIZES = ("x-small", "small", "medium", "large", "x-large", "xx-large")

DEPARTMENTS: tuple[Department, ...] = (
    Department("fashion", "Clothing, Shoes & Jewelry › Shoes › Outdoor", (
        Kind("hiking boots", "hiking boots", "Boots", (39, 160)),
        Kind("trail running shoes", "trail running shoes", "Running", (35, 140)),
        Kind("sport sandals", "sport sandals", "Sandals", (18, 70)),
        Kind("house slippers", "house slippers", "Slippers", (12, 45))),
        ("waterproof", "non slip", "arch support", "lightweight", "memory foam", "quick drying", "wide toe box",
         "breathable mesh"),
        {"color": COLORS[:8], "size": ("6", "7", "7.5", "8", "8.5", "9", "10", "11", "12")},
        ("Trekker", "Ridge", "Summit", "Everyday", "Cloud", "Pathway")),
    Department("fashion", "Clothing, Shoes & Jewelry › Clothing › Tops & Outerwear", (
        Kind("hooded sweatshirt", "hoodie", "Hoodies", (22, 80)),
        Kind("rain jacket", "rain jacket", "Jackets", (40, 190)),
        Kind("crew neck t-shirt", "t-shirt", "T-Shirts", (9, 35)),
        Kind("fleece vest", "fleece vest", "Vests", (25, 85))),
        ("machine washable", "organic cotton", "relaxed fit", "moisture wicking", "packable hood", "zipper pockets",
         "pre shrunk", "wind resistant"),
        {"color": COLORS, "size": APPAREL_SIZES},
        ("Classic", "Heritage", "Urban", "Trail", "Weekend", "Studio")),
    Department("beauty", "Beauty & Personal Care › Skin Care › Face", (
        Kind("face moisturizer", "face moisturizer", "Moisturizers", (9, 60)),
        Kind("mineral sunscreen", "sunscreen", "Sunscreens", (8, 38)),
        Kind("lip balm", "lip balm", "Lip Care", (3, 18)),
        Kind("night cream", "night cream", "Night Creams", (12, 75))),
        ("fragrance free", "paraben free", "cruelty free", "for sensitive skin", "hyaluronic acid", "vitamin c",
         "shea butter", "long lasting"),
        {"size": ("0.5 oz", "1 oz", "1.7 oz", "2.5 oz", "3.4 oz"), "scent": ("unscented", "lavender", "citrus",
                                                                            "cucumber", "rose")},
        ("Daily", "Gentle", "Radiant", "Pure", "Botanical", "Clinical")),
    Department("beauty", "Beauty & Personal Care › Hair Care › Shampoo & Conditioner", (
        Kind("shampoo", "shampoo", "Shampoos", (6, 32)),
        Kind("conditioner", "conditioner", "Conditioners", (6, 32)),
        Kind("hair oil", "hair oil", "Oils", (8, 40)),
        Kind("dry shampoo", "dry shampoo", "Dry Shampoos", (5, 24))),
        ("sulfate free", "tea tree", "for curly hair", "argan oil", "color safe", "natural ingredients",
         "volumizing", "anti dandruff"),
        {"size": ("8 fl oz", "12 fl oz", "16 fl oz", "32 fl oz"), "pack": ("pack of 1", "pack of 2", "pack of 3")},
        ("Salon", "Herbal", "Silk", "Ocean", "Repair", "Fresh")),
    Department("food", "Grocery & Gourmet Food › Snacks & Breakfast", (
        Kind("granola bars", "granola bars", "Bars", (5, 30)),
        Kind("trail mix", "trail mix", "Nuts & Trail Mix", (6, 28)),
        Kind("rice crackers", "crackers", "Crackers", (3, 16)),
        Kind("instant oatmeal", "oatmeal", "Oatmeal", (4, 20))),
        ("gluten free", "high protein", "low sugar", "non gmo", "vegan", "kosher", "whole grain", "no artificial "
         "flavors"),
        {"flavor name": ("honey almond", "dark chocolate", "sea salt", "cinnamon", "peanut butter", "berry"),
         "size": ("6 count", "12 count", "24 count", "36 count")},
        ("Harvest", "Sunrise", "Meadow", "Crunch", "Orchard", "Pantry")),
    Department("food", "Grocery & Gourmet Food › Beverages › Coffee & Tea", (
        Kind("whole bean coffee", "coffee beans", "Whole Bean", (8, 45)),
        Kind("green tea bags", "green tea", "Green Tea", (4, 22)),
        Kind("herbal tea", "herbal tea", "Herbal Tea", (4, 22)),
        Kind("cold brew concentrate", "cold brew", "Cold Brew", (9, 35))),
        ("fair trade", "organic", "caffeine free", "single origin", "dark roast", "decaf", "sugar free",
         "resealable bag"),
        {"size": ("12 ounce", "16 ounce", "2 pound", "20 count", "40 count"), "pack": ("pack of 1", "pack of 2",
                                                                                        "pack of 4")},
        ("Morning", "Highland", "Roastery", "Garden", "Valley", "Copper")),
    Department("furniture", "Home & Kitchen › Furniture › Living Room", (
        Kind("bookshelf", "bookshelf", "Bookcases", (45, 260)),
        Kind("side table", "side table", "End Tables", (30, 160)),
        Kind("storage ottoman", "ottoman", "Ottomans", (35, 180)),
        Kind("floor lamp", "floor lamp", "Lamps", (28, 150))),
        ("solid wood", "easy assembly", "space saving", "mid century", "metal frame", "storage space",
         "living room", "weight capacity"),
        {"color": ("walnut", "oak", "white", "black", "espresso", "grey"), "size": ("small", "medium", "large")},
        ("Loft", "Nordic", "Artisan", "Modern", "Cottage", "Metro")),
    Department("furniture", "Home & Kitchen › Bedding", (
        Kind("duvet cover set", "duvet cover", "Duvet Covers", (30, 140)),
        Kind("bed pillows", "pillows", "Pillows", (18, 90)),
        Kind("fleece throw blanket", "throw blanket", "Throws", (15, 65)),
        Kind("fitted sheet", "fitted sheet", "Sheets", (14, 60))),
        ("machine washable", "hypoallergenic", "breathable", "wrinkle resistant", "deep pocket", "cooling",
         "soft microfiber", "fade resistant"),
        {"color": COLORS[:10], "size": ("twin", "full", "queen", "king")},
        ("Dream", "Haven", "Linen", "Cozy", "Harbor", "Willow")),
    Department("electronics", "Electronics › Portable Audio & Chargers", (
        Kind("wireless earbuds", "wireless earbuds", "Earbuds", (19, 150)),
        Kind("bluetooth speaker", "bluetooth speaker", "Speakers", (22, 180)),
        Kind("wall charger", "phone charger", "Chargers", (9, 45)),
        Kind("usb c cable", "usb c cable", "Cables", (6, 25))),
        ("fast charging", "noise cancelling", "long battery life", "water resistant", "high definition",
         "easy to carry", "wireless charging", "built in microphone"),
        {"color": ("black", "white", "navy blue", "red", "silver"), "style": ("standard", "pro", "mini", "2 pack")},
        ("Pulse", "Volt", "Echo", "Nimbus", "Arc", "Beacon")),
    Department("electronics", "Electronics › Computers & Accessories", (
        Kind("mechanical keyboard", "keyboard", "Keyboards", (29, 160)),
        Kind("wireless mouse", "wireless mouse", "Mice", (12, 70)),
        Kind("laptop stand", "laptop stand", "Stands", (18, 80)),
        Kind("usb hub", "usb hub", "Hubs", (12, 60))),
        ("plug and play", "ergonomic design", "aluminum alloy", "rechargeable battery", "adjustable height",
         "quiet click", "compact size", "backlit keys"),
        {"color": ("black", "white", "space grey", "silver", "pink"), "style": ("wired", "wireless", "bundle")},
        ("Vertex", "Orbit", "Quantum", "Stack", "Delta", "Prism")),
    Department("pets", "Pet Supplies › Dogs & Cats", (
        Kind("dog bed", "dog bed", "Beds", (22, 120)),
        Kind("cat scratching post", "cat scratcher", "Scratchers", (15, 75)),
        Kind("dog leash", "dog leash", "Leashes", (8, 35)),
        Kind("pet grooming brush", "pet brush", "Brushes", (7, 30))),
        ("orthopedic", "non toxic", "reflective stitching", "easy to clean", "durable", "for small dogs",
         "for large dogs", "anti slip bottom"),
        {"color": ("brown", "grey", "navy blue", "beige", "red", "black"), "size": ("small", "medium", "large",
                                                                                  "x-large")},
        ("Paws", "Buddy", "Whisker", "Fetch", "Tails", "Meadow")),
    Department("garden", "Patio, Lawn & Garden › Gardening & Outdoor", (
        Kind("garden hose", "garden hose", "Hoses", (18, 90)),
        Kind("ceramic planter", "planter", "Planters", (12, 70)),
        Kind("camping lantern", "camping lantern", "Lanterns", (12, 55)),
        Kind("folding camp chair", "camp chair", "Chairs", (20, 95))),
        ("heavy duty", "weather resistant", "drainage hole", "rechargeable", "kink free", "uv resistant",
         "portable", "rust proof"),
        {"color": ("green", "terracotta", "white", "black", "blue", "grey"), "size": ("small", "medium", "large",
                                                                                    "25 ft", "50 ft")},
        ("Greenway", "Backyard", "Canyon", "Grove", "Patio", "Frontier")),
)

_SYLLABLES = ("ka", "lo", "mi", "ve", "ra", "no", "ti", "sel", "bor", "dan", "qui", "fen", "tor", "ly", "mar", "zo",
              "pel", "ush", "vin", "gra")
_REVIEW_TITLES = ("Does what it says", "Good value", "Better than expected", "Solid choice", "Would buy again",
                  "Not bad at all")


def _brand(rng: random.Random) -> str:
    return "".join(rng.sample(_SYLLABLES, rng.choice((2, 3)))).capitalize()


def _asin(rng: random.Random, taken: set[str]) -> str:
    while True:
        asin = "B0" + "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(8))
        if asin not in taken:
            taken.add(asin)
            return asin


def _title(rng: random.Random, brand: str, kind: Kind, style: str, attributes: list[str]) -> str:
    # Two of the three attributes go into the title; the third is only in the features and description, so a
    # shopper (and the expert) sometimes has to open Features to see it.
    a, b = attributes[0], attributes[1]
    patterns = (f"{brand} {style} {kind.noun.title()} - {a.title()}, {b.title()}",
                f"{brand} {a.title()} {kind.noun.title()}, {style} Edition with {b.title()}",
                f"{style} {kind.noun.title()} by {brand}, {a.title()} and {b.title()}")
    return rng.choice(patterns)


def _description(rng: random.Random, brand: str, kind: Kind, attributes: list[str]) -> str:
    openers = (f"The {brand} {kind.noun} is made for everyday use.",
               f"Meet the {kind.noun} from {brand}, designed and tested for years of service.",
               f"{brand} built this {kind.noun} around the details that matter.")
    middles = (f"It is {attributes[0]} and {attributes[1]}, and it is {attributes[2]} as well.",
               f"Expect a {kind.noun} that is {attributes[2]}, with {attributes[0]} and {attributes[1]} details.",
               f"Highlights: {attributes[0]}, {attributes[1]}, {attributes[2]}.")
    closers = ("Backed by a one year warranty.", "Ships in recyclable packaging.", "Satisfaction guaranteed.")
    return " ".join((rng.choice(openers), rng.choice(middles), rng.choice(closers)))


def _bullets(rng: random.Random, kind: Kind, attributes: list[str]) -> list[str]:
    frames = ("{A}: a {noun} you can rely on", "{A} for comfort and ease of use", "Designed to be {a}",
              "{A} - checked on every unit before it ships")
    bullets = [rng.choice(frames).format(A=a.capitalize(), a=a, noun=kind.noun) for a in attributes]
    bullets.append(rng.choice(("What you get: one {noun} and a quick start card", "Covered by our one year warranty",
                               "Questions? Our support team answers within a day")).format(noun=kind.noun))
    return bullets


def _instruction(rng: random.Random, kind: Kind, attrs: list[str], options: list[str]) -> str:
    wanted = " and ".join(attrs)
    opts = " and ".join(options)
    patterns = (f"i am looking for {wanted} {kind.noun} in {opts}",
                f"i need {kind.noun} that is {wanted}, {opts}",
                f"find me {wanted} {kind.noun} with {opts}",
                f"i want to buy {kind.noun} which are {wanted}, and choose {opts}",
                f"looking for {wanted} {kind.noun} in {opts}")
    return rng.choice(patterns)


def generate(seed: int = SEED) -> dict[str, Any]:
    """The three WebShop files' contents: {"products": [...], "attributes": {...}, "instructions": {...}}.

    >>> data = generate()
    >>> len(data["products"]), len(data["instructions"])
    (2400, 400)
    >>> sorted(data["products"][0])[:5]
    ['asin', 'average_rating', 'category', 'customization_options', 'full_description']
    """
    rng = random.Random(seed)
    taken: set[str] = set()
    products: list[dict[str, Any]] = []
    attributes: dict[str, Any] = {}
    instructions: dict[str, Any] = {}
    for dept in DEPARTMENTS:
        for kind in dept.kinds:
            for _ in range(PRODUCTS_PER_TYPE):
                asin = _asin(rng, taken)
                brand = _brand(rng)
                style = rng.choice(dept.styles)
                attrs = rng.sample(dept.attributes, 3)
                options = {name: sorted(rng.sample(values, rng.randint(2, min(5, len(values)))),
                                        key=values.index)
                           for name, values in dept.options.items()}
                low, high = kind.price
                price = round(rng.uniform(low, high), 2)
                title = _title(rng, brand, kind, style, attrs)
                products.append({
                    "asin": asin,
                    "name": title,
                    "category": dept.category,
                    "query": kind.query,
                    "product_category": f"{dept.path} › {kind.leaf}",
                    "full_description": _description(rng, brand, kind, attrs),
                    "small_description": _bullets(rng, kind, attrs),
                    "pricing": f"${price:.2f}",
                    "customization_options": {name: [{"value": v, "image": None} for v in values]
                                              for name, values in options.items()},
                    "images": [],
                    "average_rating": round(rng.uniform(3.2, 4.9), 1),
                    "reviews": [{"title": rng.choice(_REVIEW_TITLES), "score": rng.randint(3, 5),
                                 "body": f"I use this {kind.noun} every week. {rng.choice(attrs).capitalize()}, "
                                         "as promised."} for _ in range(rng.randint(1, 3))],
                })
                attributes[asin] = {"attributes": list(attrs)}
                if len(products) % INSTRUCTED_EVERY == 0:
                    goal_attrs = rng.sample(attrs, rng.choice((1, 2)))
                    goal_opts = [rng.choice(values) for _, values in sorted(options.items())]
                    goal_opts = goal_opts[:rng.choice((1, 2))] if rng.random() < 0.3 else goal_opts
                    instructions[asin] = [{
                        "asin": asin,
                        "instruction": _instruction(rng, kind, goal_attrs, goal_opts),
                        "instruction_attributes": goal_attrs,
                        "instruction_options": goal_opts,
                    }]
    rng.shuffle(products)  # WebShop's file is shuffled too ("items_shuffle"): search ranks, not file order, count
    return {"products": products, "attributes": attributes, "instructions": instructions}


def write(out: Path, seed: int = SEED) -> list[Path]:
    """Write the three files (gzip, mtime 0: the same bytes every time) into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for key, value in generate(seed).items():
        path = out / FILES[key]
        raw = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
        path.write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    """``python -m agentinstruct.builders.webshop.generate [DIR]``: regenerate the embedded catalogue."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=DATA, help=f"output directory (default {DATA})")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    for path in write(args.out, args.seed):
        print(f"{path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
