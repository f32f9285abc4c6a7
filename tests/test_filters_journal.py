"""Filter steps (keep or drop with a reason, with stats) and the build journal (resume, torn lines, mismatches)."""

from __future__ import annotations

import json

import pytest

from agentinstruct.collection.journal import Journal, JournalMismatch, journal_path
from agentinstruct.filters.base import FilterPipeline, FormatErrorFilter, LengthFilter, RewardFilter


def rec(reward=1.0, format_errors=0, turns=2, chars=10):
    return {
        "reward": reward, "num_turns": turns, "reward_details": {"format_errors": format_errors},
        "conversations": [{"from": "human", "value": "x" * chars, "loss": None}],
        "filter": None,
    }


def test_pipeline_first_failing_filter_gives_the_reason_and_every_filter_counts():
    pipe = FilterPipeline([RewardFilter(1.0), FormatErrorFilter(1), LengthFilter(max_chars=50, max_turns=3)])
    assert pipe.bar == "reward>=1.0 and format_errors<=1 and chars<=50 and turns<=3"
    decisions = [pipe.apply(r)["filter"] for r in
                 [rec(), rec(reward=0.5, format_errors=5), rec(format_errors=2), rec(chars=51), rec(turns=4)]]
    assert decisions[0] == {"bar": pipe.bar, "kept": True, "reason": None}
    assert [d["reason"] for d in decisions[1:]] == ["reward 0.5 < 1.0", "2 format errors > 1", "51 chars > 50",
                                                     "4 turns > 3"]
    reward, fmt, length = pipe.filters
    assert (reward.stats.checked, reward.stats.dropped) == (5, 1)
    assert (fmt.stats.checked, fmt.stats.dropped) == (4, 1)  # a dropped record goes no further
    assert (length.stats.checked, length.stats.dropped) == (3, 2)
    assert "reward>=1.0: 1 of 5 dropped; reward 0.5 < 1.0 (1)" in pipe.summary()


def test_a_record_without_agent_turns_is_never_kept():
    pipe = FilterPipeline([RewardFilter(0.0)])
    assert pipe.apply(rec(turns=0))["filter"] == {"bar": "reward>=0.0", "kept": False,
                                                   "reason": FilterPipeline.NO_AGENT_TURN}


def test_run_streams_records():
    pipe = FilterPipeline([RewardFilter(1.0)])
    assert [r["filter"]["kept"] for r in pipe.run(iter([rec(), rec(reward=0.0)]))] == [True, False]


PARAMS = {"split": "os", "seed": 1, "policy": "model"}


def test_journal_resumes_finished_and_errored(tmp_path):
    with Journal.open(tmp_path, "os", PARAMS) as j:
        j.finish("os_0", 0, [{"id": "os_0"}])
        j.error("os_1", "down")
        j.error("os_2", "down")
        j.finish("os_2", 2, [{"id": "os_2"}])
    with Journal.open(tmp_path, "os", dict(PARAMS)) as j:
        assert list(j.finished) == ["os_0", "os_2"]
        assert j.errored == {"os_1": "down"}


def test_torn_last_line_is_cut_and_appends_start_clean(tmp_path):
    with Journal.open(tmp_path, "os", PARAMS) as j:
        j.finish("os_0", 0, [{"id": "os_0"}])
    path = journal_path(tmp_path, "os")
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"kind":"finished","id":"os_1","rec')  # killed mid-write
    with Journal.open(tmp_path, "os", PARAMS) as j:
        assert list(j.finished) == ["os_0"]
        j.finish("os_1", 1, [{"id": "os_1"}])
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and [json.loads(x)["kind"] for x in lines] == ["header", "finished", "finished"]


def test_a_garbled_complete_last_line_is_dropped_but_a_garbled_middle_line_is_an_error(tmp_path):
    with Journal.open(tmp_path, "os", PARAMS) as j:
        j.finish("os_0", 0, [{"id": "os_0"}])
    path = journal_path(tmp_path, "os")
    path.write_bytes(path.read_bytes() + b"\x00\x00garbage\n")
    with Journal.open(tmp_path, "os", PARAMS) as j:
        assert list(j.finished) == ["os_0"]
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join([lines[0], b"{broken", lines[1], b""]))
    with pytest.raises(ValueError, match=r"main.jsonl:2: corrupt journal line"):
        Journal.open(tmp_path, "os", PARAMS)


def test_torn_header_starts_over(tmp_path):
    path = journal_path(tmp_path, "os")
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"kind":"hea')
    with Journal.open(tmp_path, "os", PARAMS) as j:
        assert j.finished == {}
    assert json.loads(path.read_text().splitlines()[0])["params"] == PARAMS


def test_other_parameters_are_refused(tmp_path):
    Journal.open(tmp_path, "os", PARAMS).close()
    with pytest.raises(JournalMismatch, match=r"seed: 1 then, 2 now.*Re-run with the original options"):
        Journal.open(tmp_path, "os", {**PARAMS, "seed": 2})


def test_one_writer_at_a_time(tmp_path):
    with Journal.open(tmp_path, "os", PARAMS):
        with pytest.raises(ValueError, match="another build is writing this journal"):
            Journal.open(tmp_path, "os", PARAMS)
