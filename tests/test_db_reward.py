"""The db split's reward: answer normalisation rules, multiset comparison, table hashes, AgentBench's md5."""

from __future__ import annotations

import json

import pytest

from agentinstruct.builders.db.reward import (agentbench_md5, answers_match, md5_from_answer_field, normalize_value,
                                              parse_answer, table_hash)


@pytest.mark.parametrize("given, expected", [
    ([" 7 "], ["7"]),              # whitespace around a value
    (["a  b"], ["a b"]),                # inner whitespace runs
    (["TRUE"], ["true"]),               # case of booleans
    ([True], ["True"]),
    ([False], ["false"]),
    ([1], ["1.0"]),                     # 1 vs 1.0
    ([1.0], [1]),
    (["2011.0"], ["2011"]),
    ([None], ["none"]),                 # None
    (["NULL"], ["None"]),
    ([], ["none"]),                     # no rows is AgentBench's ["none"]
    ([22.950000000001], ["22.95"]),     # engines' float noise
    (["b", "a"], ["a", "b"]),           # order of several values
    ([1, "x"], ["x", "1.0"]),
])
def test_normalisation_makes_equal(given, expected):
    assert answers_match(given, expected)


@pytest.mark.parametrize("given, expected", [
    (["Giza "], ["giza"]),              # case of text is kept
    (["21,000"], ["21000"]),            # thousands separators are not numbers
    (["a"], ["a", "a"]),                # multisets: repeats count
    (["a", "a"], ["a", "b"]),
    ([2], ["2.5"]),
    (["true"], ["1"]),                  # booleans are not numbers
    ([], ["0"]),
    (["none"], ["nonesuch"]),
    (["1–0"], ["1–0", "2–0"]),
])
def test_different_answers_do_not_match(given, expected):
    assert not answers_match(given, expected)


@pytest.mark.parametrize("text, items", [
    ('["March 19, 1998"]', ["March 19, 1998"]),
    ("['a', None, 2]", ["a", None, 2]),
    ('[null, 1.5]', [None, 1.5]),
    ("7", [7]),
    ("Giza", ["Giza"]),
    ("[Giza", ["[Giza"]),               # unparsable: one bare string, never an exception
    ("", []),
    ("('x', 'y')", ["x", "y"]),
])
def test_parse_answer(text, items):
    assert parse_answer(text) == items


def test_normalize_value_numbers():
    assert normalize_value(10**20) == str(10**20)           # big ints stay exact
    assert normalize_value(1e300) == "1e+300"
    assert normalize_value("nan") == "nan"                  # a word, not a number
    assert normalize_value(b"x") == "x"


def test_table_hash_ignores_row_order_and_engine_types():
    rows = [("a", "1"), ("b", None), ("c", "x y")]
    assert table_hash(["k", "v"], rows) == table_hash(["k", "v"], list(reversed(rows)))
    assert table_hash(["k"], [(5,)]) == table_hash(["k"], [(5.0,)]) == table_hash(["k"], [("5",)])


@pytest.mark.parametrize("changed", [
    [("a", "1"), ("b", None), ("c", "x  y")],    # a space
    [("a", "1"), ("b", ""), ("c", "x y")],       # NULL is not ''
    [("A", "1"), ("b", None), ("c", "x y")],     # letter case of stored text
    [("a", "1"), ("b", None)],                   # a missing row
    [("a", "1"), ("a", "1"), ("b", None), ("c", "x y")],  # a duplicated row
])
def test_table_hash_sees_every_change(changed):
    assert table_hash(["k", "v"], [("a", "1"), ("b", None), ("c", "x y")]) != table_hash(["k", "v"], changed)


def test_table_hash_includes_columns():
    assert table_hash(["a"], [("1",)]) != table_hash(["b"], [("1",)])


def test_agentbench_md5_matches_the_published_hashes_of_unchanged_tables(agentbench):
    """AgentBench's answer_md5 hashes the table after the reference statement; the hash of the table *before* it
    must therefore differ, and the hash after must match (the latter is checked per backend in test_db_dev)."""
    lines = (agentbench / "dbbench" / "dev.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    modifications = [e for e in entries if "answer_md5" in e]
    assert len(modifications) == 40
    for e in modifications:
        before = agentbench_md5(e["table"]["table_info"]["rows"])
        assert before != md5_from_answer_field(e["answer_md5"])


def test_agentbench_md5_skips_nulls_and_truncates_like_mysql():
    assert agentbench_md5([("a", None, "b")]) == agentbench_md5([("a", "b")])
    many = [(str(i),) for i in range(400)]
    # group_concat stopped at 1024 characters (170 row hashes of 5 characters + commas), as MySQL's default did.
    assert agentbench_md5(many) == agentbench_md5(sorted(many, key=lambda r: __import__("hashlib").md5(
        r[0].encode()).hexdigest()[:5])[:171])
