"""Per-turn loss masks: exactly the loss:true turns are trained, in both chat formats, token by token; truncation
never leaves an example without trained tokens silently; bad masks and bad templates stop training."""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest

from agentinstruct import cli
from agentinstruct.training.base import EMBEDDED_GGUF, load_tokenizer
from agentinstruct.training.chat import AGENTLM_SYSTEM_PROMPT, ChatFormat, TemplateError, llama2_chat, model_chat
from agentinstruct.training.masking import IGNORE, EncodeStats, Encoder, MaskError, check_masks, render_mask


def H(value: str) -> dict:
    return {"from": "human", "value": value, "loss": None}


def G(value: str, loss: bool = True) -> dict:
    return {"from": "gpt", "value": value, "loss": loss}


def _records() -> list[dict]:
    """The embedded THUDM rows (os, db, mind2web) plus kg and alfworld rows shaped as AgentInstruct has them."""
    sample = resources.files("agentinstruct.records").joinpath("samples/thudm_sample.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in sample.splitlines() if line.strip()]
    rows.append({"id": "kg_0", "conversations": [
        H("You are an agent that answers questions based on the knowledge stored in a knowledge base. Tools: "
          "get_relations(variable: var) -> list of relations ..."), G("I've understood your instruction, start please.", False),
        H("A new question: the bandleader of the band?\nEntities: [Jazz]"), G("Thought: relations of Jazz\nAction: get_relations(Jazz)", False),
        H("Observation: [music.genre.artists]"), G("Final Answer: #0", False),
        H("A new question: which country borders France and Spain?\nEntities: [France, Spain]"),
        G("Thought: I need the neighbours of France.\nAction: get_relations(France)"),
        H("Observation: [location.location.adjoin_s, location.country.capital]"),
        G("Thought: adjoin_s gives neighbours.\nAction: get_neighbors(France, location.location.adjoin_s)"),
        H("Observation: variable #0, which are instances of location.country"),
        G("Final Answer: #0"),
    ]})
    rows.append({"id": "alfworld_0", "conversations": [
        H("Interact with a household to solve a task. Imagine you are an intelligent agent ..."), G("OK", False),
        H("You are in the middle of a room.\nYour task is to: put a pen in desk."),
        G("THOUGHT: I should find a pen first.\nACTION: go to sidetable 1"),
        H("On the sidetable 1, you see a pen 1."), G("ACTION: take pen 1 from sidetable 1  "),
        H("You pick up the pen 1 from the sidetable 1."), G("  ACTION: go to desk 1\n"),
    ]})
    return rows


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(EMBEDDED_GGUF)


def _runs(labels: list[int]) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, label in enumerate(labels + [IGNORE]):
        if label != IGNORE and start is None:
            start = i
        elif label == IGNORE and start is not None:
            runs.append((start, i))
            start = None
    return runs


@pytest.mark.parametrize("fmt_name", ["llama2-chat", "model"])
def test_mask_is_exactly_the_loss_true_turns(tok, fmt_name: str) -> None:
    fmt = llama2_chat() if fmt_name == "llama2-chat" else model_chat(tok)
    records = _records()
    encoder = Encoder(tok, fmt, max_length=4096)
    rows = encoder.encode(records)
    check_masks(rows, encoder.stats)
    assert [r["id"] for r in rows] == [r["id"] for r in records]
    assert encoder.stats.truncation == {}
    for rec, row in zip(records, rows):
        messages = fmt.messages(rec["conversations"])
        # the tokens are the tokenizer's own for the whole rendered conversation
        assert row["input_ids"] == tok(tok.apply_chat_template(messages, chat_template=fmt.template, tokenize=False),
                                       add_special_tokens=False)["input_ids"]
        trained = [t["value"] for t in rec["conversations"] if t["from"] == "gpt" and t["loss"] is True]
        runs = _runs(row["labels"])
        assert len(runs) == len(trained), rec["id"]
        for (a, b), value in zip(runs, trained):
            assert row["labels"][a:b] == row["input_ids"][a:b]
            text = tok.decode(row["input_ids"][a:b])
            if fmt_name == "llama2-chat":
                assert text == f" {value.strip()} {tok.eos_token}", rec["id"]
            else:
                # leading whitespace the tokenizer merges into the role header's token stays untrained
                full = f"{value}{tok.eos_token}"
                assert full.endswith(text) and not full[: len(full) - len(text)].strip(), rec["id"]
                assert text.lstrip() == full.lstrip()
        untrained = tok.decode([t for t, label in zip(row["input_ids"], row["labels"]) if label == IGNORE])
        for turn in rec["conversations"]:
            if turn["from"] == "human" or turn["loss"] is False:
                assert turn["value"].strip() in untrained
    if fmt_name == "llama2-chat":
        first = tok.decode(rows[0]["input_ids"][:40])
        assert first.startswith(f"{tok.bos_token}[INST] <<SYS>>\n{AGENTLM_SYSTEM_PROMPT}\n<</SYS>>\n\n")
    assert encoder.stats.trained_tokens == sum(sum(1 for x in r["labels"] if x != IGNORE) for r in rows)


def _trajectory(n_rounds: int, observation: str = "observation " * 30) -> list[dict]:
    """Instructions, ack, the task, then rounds of trained reply and observation, ending in a trained reply."""
    conv = [H("INSTRUCTIONS " + "rule " * 40), G("Ok.", False), H("TASK: count the files in /etc")]
    for i in range(n_rounds):
        conv += [G(f"Action: step {i}"), H(f"{observation}{i}")]
    return conv + [G("Action: answer(42)")]


def _trained_texts(tok, row: dict) -> list[str]:
    return [tok.decode(row["input_ids"][a:b]) for a, b in _runs(row["labels"])]


def test_truncation_shortens_the_longest_observations_first_with_the_notice(tok) -> None:
    conv = _trajectory(4)
    conv[4] = H("huge listing " * 300)  # the first observation is by far the longest
    conv += [H("trailing observation nobody answers")]
    encoder = Encoder(tok, model_chat(tok), max_length=400)
    (row,) = encoder.encode([{"id": "long", "conversations": conv}])
    text = tok.decode(row["input_ids"])
    assert len(row["input_ids"]) <= 400
    assert "INSTRUCTIONS" in text and "TASK: count the files" in text and "trailing observation" not in text
    assert "more characters not shown]" in text and text.count("huge listing") < 300
    # nothing else had to go: every reply, and every other observation whole
    assert _trained_texts(tok, row) == [f"Action: step {i}<|im_end|>" for i in range(4)] + ["Action: answer(42)<|im_end|>"]
    assert all(f"observation {i}" in text for i in (1, 2, 3))
    t = encoder.stats.truncation
    assert t == {"examples_truncated": 1, "trailing_turns_dropped": 1, "examples_observations_shortened": 1,
                 "observations_shortened": 1}


def test_truncation_then_drops_middle_rounds_and_keeps_the_task_and_the_final_round(tok) -> None:
    encoder = Encoder(tok, model_chat(tok), max_length=300)
    (row,) = encoder.encode([{"id": "long", "conversations": _trajectory(12, observation="ls output ")}])
    text = tok.decode(row["input_ids"])
    assert len(row["input_ids"]) <= 300
    assert "INSTRUCTIONS" in text and "TASK: count the files" in text and "Ok.<|im_end|>" in text
    trained = _trained_texts(tok, row)
    # the reply to the task and the final round stay; the earliest middle rounds went first
    assert trained[0] == "Action: step 0<|im_end|>" and trained[-1] == "Action: answer(42)<|im_end|>"
    assert "ls output 11" in text and "Action: step 1<" not in text
    t = encoder.stats.truncation
    assert t["examples_middle_rounds_dropped"] == 1 and t["middle_rounds_dropped"] == t["trained_turns_dropped"] > 0
    assert len(trained) == 13 - t["trained_turns_dropped"] and "examples_observations_shortened" not in t


def test_an_example_that_still_does_not_fit_is_dropped_and_counted(tok) -> None:
    too_long_instructions = [H("rule " * 400), G("Ok.", False), H("TASK"), G("Action: answer(1)")]
    general = [H("please summarise " + "text " * 400), G("Summary: short.")]  # a user message is never shortened
    no_trained = [H("hi"), G("Ok.", False)]
    fits = [H("short question"), G("short answer")]
    encoder = Encoder(tok, model_chat(tok), max_length=100)
    rows = encoder.encode([{"id": "i", "conversations": too_long_instructions},
                           {"id": "g", "source": "general", "conversations": general},
                           {"id": "z", "conversations": no_trained}, {"id": "f", "conversations": fits}])
    assert [r["id"] for r in rows] == ["f"]
    t = encoder.stats.truncation
    assert t == {"examples_dropped_too_long": 2, "examples_without_trained_turn": 1}
    assert encoder.stats.kept == 1 and encoder.stats.examples == 4


@pytest.mark.parametrize("fmt_name", ["llama2-chat", "model"])
def test_truncation_never_loses_the_task_or_the_final_reply(tok, fmt_name: str) -> None:
    import random

    rng = random.Random(7)
    fmt = llama2_chat() if fmt_name == "llama2-chat" else model_chat(tok)
    rows = []
    for n in range(40):
        conv = [H(f"instructions {n}"), G("Ok.", False), H(f"task {n}")]
        for _ in range(rng.randint(1, 6)):
            conv += [G("act " * rng.randint(0, 40) + ".", rng.random() < 0.7), H("obs " * rng.randint(0, 150) + "?")]
        conv.append(G(f"final {n}"))
        rows.append({"id": str(n), "conversations": conv})
    for max_length in (60, 150, 400):
        encoder = Encoder(tok, fmt, max_length)
        out = encoder.encode(rows)
        t = encoder.stats.truncation
        assert encoder.stats.examples == 40
        assert len(out) == 40 - t.get("examples_dropped_too_long", 0)
        for r in out:
            text = tok.decode(r["input_ids"])
            assert len(r["input_ids"]) <= max_length, (max_length, r["id"])
            assert f"instructions {r['id']}" in text and f"task {r['id']}" in text
            assert _trained_texts(tok, r)[-1].strip().startswith(f"final {r['id']}")


def test_check_masks_fails_loudly() -> None:
    ok = EncodeStats(suffixes=Counter({"<|im_end|>": 3}))
    with pytest.raises(MaskError, match="no examples"):
        check_masks([], ok)
    with pytest.raises(MaskError, match="example a: no trained token"):
        check_masks([{"id": "a", "input_ids": [1, 2], "labels": [IGNORE, IGNORE]}], ok)
    with pytest.raises(MaskError, match="example b: every token is trained"):
        check_masks([{"id": "b", "input_ids": [1, 2], "labels": [1, 2]}], ok)
    with pytest.raises(MaskError, match="label differs"):
        check_masks([{"id": "c", "input_ids": [1, 2], "labels": [IGNORE, 3]}], ok)
    with pytest.raises(MaskError, match="2 different suffixes"):
        check_masks([{"id": "d", "input_ids": [1, 2], "labels": [IGNORE, 2]}], EncodeStats(suffixes=Counter({"</s>": 1, "\nUser: q": 1})))


def test_templates_that_would_train_prompt_text_are_rejected(tok) -> None:
    conv = [H("question"), G("answer")]
    # no generation prompt: the trained span would begin with the role header
    headerless = ChatFormat("bad", "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}")
    with pytest.raises(TemplateError, match="does not start with the reply"):
        headerless.render_spans(tok, conv)
    # renders turns in reverse: a shorter prefix is not a prefix of the whole
    reversed_ = ChatFormat("rev", "{% for m in messages|reverse %}{{ m['content'] + '\\n' }}{% endfor %}")
    with pytest.raises(TemplateError, match="not a prefix"):
        reversed_.render_spans(tok, conv)
    # a generation prompt that the rendered reply does not start with
    mismatched = ChatFormat("mis", "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
                                   "{% if add_generation_prompt %}<bot>{% endif %}")
    with pytest.raises(TemplateError, match="generation prompt"):
        mismatched.render_spans(tok, conv)


def test_inspect_mask_prints_trained_spans(tok, tmp_path: Path, capsys) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _records()), encoding="utf-8")
    assert cli.main(["inspect-mask", str(path), "--index", "1"]) == 0
    out = capsys.readouterr().out
    assert '[[ Action: Answer\nFinal Answer: ["Lyon"] <|im_end|>]]' in out
    assert "[/INST] Ok. <|im_end|>" in out and "[[ Ok." not in out
    assert "db_0:" in out and "trained" in out
    row = Encoder(tok, model_chat(tok), 4096).encode(_records()[:1])[0]
    assert render_mask(tok, row, "<<", ">>").count("<<") == 2
    assert cli.main(["inspect-mask", str(path), "--index", "99"]) == 2
