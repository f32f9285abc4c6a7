"""WebShop's reward (builders/webshop/reward.py) on cases computed by hand, and WebShop's own goal tests.

Each expected value is worked out below from WebShop's formula: (attribute matches + option matches + [price <=
bound]) / (attributes + options + 1), times r_type.
"""

from __future__ import annotations

from math import isclose

import pytest

from agentinstruct.builders.webshop.reward import (get_attribute_reward, get_option_reward, get_reward,
                                                   get_type_reward, normalize_color)

BOOTS = {
    "asin": "B0TEST0001", "query": "hiking boots", "product_category": "Shoes › Outdoor › Boots",
    "name": "Trailmark Waterproof Hiking Boots", "Title": "Trailmark Waterproof Hiking Boots",
    "Attributes": ["waterproof", "arch support"], "BulletPoints": ["Grippy sole"], "Description": "Leather upper.",
}
GOAL = {
    "asin": "B0TEST0001", "query": "hiking boots", "product_category": "Shoes › Outdoor › Boots",
    "name": "Trailmark Waterproof Hiking Boots", "attributes": ["waterproof", "arch support"],
    "goal_options": ["black", "9"], "price_upper": 60.0,
}


def test_perfect_buy_scores_one_with_every_component() -> None:
    # (2 attributes + 2 options + price) / (2 + 2 + 1) = 5/5, r_type 1 (same query, category and name).
    reward, info = get_reward(BOOTS, GOAL, price=49.99, options={"color": "black", "size": "9"}, verbose=True)
    assert reward == 1.0
    assert info == {"r_type": 1.0, "r_att": 1.0, "w_att": 0.4, "query_match": True, "category_match": True,
                    "title_score": 1.0, "r_option": 1.0, "w_option": 0.4, "r_price": True, "w_price": 0.2}


def test_wrong_option_loses_its_share() -> None:
    # white is not black: (2 + 1 + 1) / 5 = 0.8.
    assert get_reward(BOOTS, GOAL, price=49.99, options={"color": "white", "size": "9"}) == 0.8
    # No option chosen at all: (2 + 0 + 1) / 5 = 0.6.
    assert get_reward(BOOTS, GOAL, price=49.99, options={}) == 0.6
    # normalize_color reduces both to "blue": WebShop counts navy blue for sky blue, and so do we.
    assert normalize_color("sky blue") == normalize_color("navy blue") == "blue"
    assert get_reward(BOOTS, dict(GOAL, goal_options=["navy blue"]), 49.99, {"color": "sky blue"}) == 1.0


def test_over_budget_loses_the_price_share() -> None:
    # 60.01 > 60: (2 + 2 + 0) / 5 = 0.8; exactly the bound still counts.
    assert get_reward(BOOTS, GOAL, price=60.01, options={"color": "black", "size": "9"}) == 0.8
    assert get_reward(BOOTS, GOAL, price=60.0, options={"color": "black", "size": "9"}) == 1.0


def test_wrong_product_type_scales_the_reward() -> None:
    mug = dict(BOOTS, query="coffee mug", product_category="Kitchen › Drinkware › Mugs",
               name="Quillon Ceramic Coffee Mug", Title="Quillon Ceramic Coffee Mug")
    # The mug's nouns share none of the goal's (trailmark, waterproof, hiking, boots): title_score 0 -> r_type 0.
    result = get_type_reward(mug, GOAL)
    assert result == {"r_type": 0.0, "query_match": False, "category_match": False, "title_score": 0.0}
    assert get_reward(mug, GOAL, price=10.0, options={"color": "black", "size": "9"}) == 0.0
    # Boots of another listing: 1 shared noun (boots) of the goal name's 7 = 0.14, no query or category match:
    # r_type 0.5, so a buy that is otherwise perfect scores 0.5.
    goal = dict(GOAL, name="Lotor Waterproof Hiking Boots, Cloud Edition with Lightweight")
    other = dict(BOOTS, query="boots", product_category="Fashion › Men › Shoes", name="Pinecrest Leather Boots")
    result = get_type_reward(other, goal)
    assert result["r_type"] == 0.5 and isclose(result["title_score"], 1 / 7)
    assert get_reward(other, goal, price=10.0, options={"color": "black", "size": "9"}) == 0.5


def test_attribute_found_only_in_the_description() -> None:
    # No annotated attributes match (WebShop's DUMMY_ATTR), the title says waterproof, only the description says
    # arch support: both still count through the text fallback.
    plain = dict(BOOTS, Attributes=["DUMMY_ATTR"], Description="Cushioned insole with arch support.")
    assert get_attribute_reward(plain, GOAL) == (1.0, 2)
    assert get_reward(plain, GOAL, price=49.99, options={"color": "black", "size": "9"}) == 1.0
    # Without it in any text: 1 of 2 attributes, (1 + 2 + 1) / 5 = 0.8.
    bare = dict(plain, Description="Leather upper.")
    assert get_attribute_reward(bare, GOAL) == (0.5, 1)
    assert get_reward(bare, GOAL, price=49.99, options={"color": "black", "size": "9"}) == 0.8


def test_goal_without_a_price_bound_has_no_price_component() -> None:
    with pytest.raises(TypeError):  # WebShop adds None too: a bound of 0 is not a goal it makes
        get_reward(BOOTS, dict(GOAL, price_upper=0), price=1.0, options={})


# WebShop's own tests (tests/web-agent-site/engine/test_goal.py), on the same inputs.

def test_webshop_attribute_cases() -> None:
    goal = {"attributes": ["tea tree", "essential oils", "natural ingredients"]}
    assert get_attribute_reward({"Attributes": ["tea tree", "essential oil", "natural ingredients"]}, goal) == (1, 3)
    partial = {"Attributes": ["essential oil", "natural ingredients"], "Title": "", "BulletPoints": [],
               "Description": ""}
    assert get_attribute_reward(partial, goal) == (2 / 3, 2)
    text_only = {"Attributes": [], "Title": "", "BulletPoints": ["This shampoo has essential oils and smells nice"],
                 "Description": "Best shampoo on the market, made with natural ingredients"}
    assert get_attribute_reward(text_only, goal) == (2 / 3, 2)
    none = {"Attributes": ["tea bag", "earl gray", "lipton"], "Title": "English tea for breakfast",
            "BulletPoints": ["Soothing aroma"], "Description": "Best tea made by Lipton"}
    assert get_attribute_reward(none, goal) == (0, 0)


def test_webshop_option_cases() -> None:
    assert get_option_reward(["pack of 12", "grey", "XL"], ["grey", "XL", "pack of 12"]) == (1, 3)
    assert get_option_reward(["pack of 12", "blue", "XL"], ["grey", "XL", "pack of 12"]) == (2 / 3, 2)
    assert get_option_reward(["pack of 12", "powder snow", "XL"], ["cool powder snow", "XL", "pack of 12"]) == (1, 3)
    assert get_option_reward(["goal 1", "goal 2"], []) == (None, 0)


def test_webshop_type_cases() -> None:
    goal = {"query": "Query 1", "product_category": "a › b › c", "name": "Name 1"}
    purchased = dict(goal)
    assert get_type_reward(purchased, goal) == {"r_type": 1.0, "query_match": True, "category_match": True,
                                                "title_score": 1.0}
    for category, match in (("b › c › a", True), ("d › e › f", False), ("a › d › b", True), ("a › a › b", True),
                            ("a › a › d", False)):
        assert get_type_reward(dict(purchased, product_category=category), goal)["category_match"] is match
    goal["name"] = "Rusticware 921ORB Kitchen and Bath Cabinet Knob"
    purchased["name"] = ("Minkissy 2pcs Stainless Steel Eyebrow Tweezers Blackhead Acne Remover Portable Makeup "
                         "Tweezers (Silver)")
    assert get_type_reward(purchased, goal)["title_score"] < 0.05
