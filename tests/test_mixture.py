"""The eta mixture: effective eta within tolerance, the repetition rule, TRL-style no-oversampling, the written
dataset dir and manifest, and the `agentinstruct mix` command."""

from __future__ import annotations

import json
import math
from collections import Counter
from importlib import resources
from pathlib import Path

import datasets
import pytest

from agentinstruct import cli
from agentinstruct.records.thudm import import_thudm
from agentinstruct.training.base import EMBEDDED_GGUF, load_tokenizer
from agentinstruct.training.mixconfig import MixtureSpec, SourceSpec, load_mixture_spec
from agentinstruct.training.mixture import MESSAGES_MAP, MIXTURE_MANIFEST, Source, build_mixture, load_agent, mix, read_mixture

AGENT = [{"id": f"os_{i}", "split": "os", "conversations": [
    {"from": "human", "value": f"task {i}", "loss": None}, {"from": "gpt", "value": "Ok.", "loss": False},
    {"from": "human", "value": "go", "loss": None}, {"from": "gpt", "value": f"Act: answer({i})", "loss": True}]}
    for i in range(7)]
GENERAL = [{"id": f"g{i}", "conversations": [{"from": "human", "value": f"q{i}", "loss": None},
                                             {"from": "gpt", "value": f"a{i} " * 5, "loss": True}]} for i in range(300)]


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(EMBEDDED_GGUF)


@pytest.mark.parametrize("eta", [0.05, 0.2, 0.5])
def test_effective_eta_is_within_tolerance(eta: float) -> None:
    n = 20_000
    m = mix(AGENT, GENERAL, eta, n, seed=3)
    assert m.drawn["samples"] == n == m.drawn["agent"] + m.drawn["general"]
    assert abs(m.drawn["agent"] / n - eta) < 4 * math.sqrt(eta * (1 - eta) / n)


def test_rows_repeat_as_evenly_as_possible_and_keep_their_loss() -> None:
    m = mix(AGENT, GENERAL, 0.2, 3_000, seed=1)
    uses = Counter(r["source_id"] for r in m.rows if r["source"] == "agent")
    assert set(uses) == {a["id"] for a in AGENT} and max(uses.values()) - min(uses.values()) <= 1
    assert m.drawn["agent_max_uses"] == max(uses.values()) and m.drawn["agent_unique"] == 7
    epochs = [r["epoch"] for r in m.rows if r["source"] == "agent"]
    assert epochs == sorted(epochs) and max(epochs) == max(uses.values()) - 1
    general_uses = Counter(r["source_id"] for r in m.rows if r["source"] == "general")
    assert max(general_uses.values()) - min(general_uses.values()) <= 1
    agent_row = next(r for r in m.rows if r["source"] == "agent")
    assert [t["loss"] for t in agent_row["conversations"]] == [None, False, None, True]
    assert [r["id"] for r in m.rows[:3]] == ["mix_0", "mix_1", "mix_2"]
    assert mix(AGENT, GENERAL, 0.2, 3_000, seed=1).rows == m.rows
    assert mix(AGENT, GENERAL, 0.2, 3_000, seed=2).rows != m.rows


def test_no_oversampling_uses_each_row_once_and_keeps_eta() -> None:
    m = mix(AGENT, GENERAL, 0.2, 1_000, seed=0, oversample=False)
    assert m.drawn["samples_requested"] == 1_000 and m.drawn["samples"] == 35  # 7 agent rows / 0.2
    assert m.drawn["agent"] == 7 and m.drawn["general"] == 28
    assert m.drawn["agent_max_uses"] == 1 and m.drawn["general_max_uses"] == 1
    assert {r["epoch"] for r in m.rows} == {0}
    m = mix(AGENT, GENERAL, 0.01, 100, seed=0, oversample=False)
    assert m.drawn["samples"] == 100 and m.drawn["agent"] == 1


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"eta": 1.5}, "eta must be in"), ({"samples": 0}, "samples must be positive"),
    ({"agent": []}, "no agent data"), ({"general": []}, "no general data"),
])
def test_mix_rejects_bad_input(kwargs: dict, message: str) -> None:
    args = {"agent": AGENT, "general": GENERAL, "eta": 0.2, "samples": 10, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        mix(**args)


def _agent_dir(tmp_path: Path) -> Path:
    sample = resources.files("agentinstruct.records").joinpath("samples/thudm_sample.jsonl")
    with resources.as_file(sample) as path:
        import_thudm(str(path), tmp_path / "agent")
    return tmp_path / "agent"


def test_build_mixture_writes_a_loadable_dir_and_manifest(tmp_path: Path, tok) -> None:
    agent_dir = _agent_dir(tmp_path)
    general = tmp_path / "general.jsonl"
    general.write_text("".join(json.dumps({"id": g["id"], "conversations": [{"from": t["from"], "value": t["value"]}
                                                                             for t in g["conversations"]]}) + "\n"
                               for g in GENERAL[:50]) + json.dumps({"id": "bad", "conversations": []}) + "\n")
    spec = MixtureSpec(agent=[SourceSpec(str(agent_dir))], general=[SourceSpec(str(general))], eta=0.2, samples=400, seed=5)
    manifest = build_mixture(spec, tmp_path / "mix", tok)
    on_disk = json.loads((tmp_path / "mix" / MIXTURE_MANIFEST).read_text())
    assert on_disk == manifest
    (agent_source,), (general_source,) = manifest["sources"]["agent"], manifest["sources"]["general"]
    assert agent_source["kind"] == "dir" and len(agent_source["manifest_sha256"]) == 64 and agent_source["weight"] == 1.0
    agent_rows = load_agent(str(agent_dir))[0]  # the embedded sample's rows
    assert agent_source["rows"] == len(agent_rows) and agent_source["name"] == str(agent_dir)
    assert len(agent_source["data_files"]) == len({r["split"] for r in agent_rows})
    assert general_source["source"]["sha256"] and general_source["dropped"] == {"no_conversations": 1}
    # about 80 agent draws over 5 rows and 320 general draws over 50: both above the default max_repeats 4
    assert [w.split(":")[0] for w in manifest["warnings"]] == [f"source {agent_dir}", f"source {general}"]
    drawn, eff = manifest["drawn"], manifest["effective_eta"]
    assert drawn["agent"] + drawn["general"] == 400 and eff["examples"] == drawn["agent"] / 400
    by_source = eff["trained_tokens_by_source"]
    assert eff["trained_tokens"] == by_source["agent"] / (by_source["agent"] + by_source["general"])
    (data_file,) = manifest["data_files"]
    assert data_file["rows"] == 400 and (tmp_path / "mix" / data_file["path"]).exists()

    ds, again = read_mixture(tmp_path / "mix")
    assert again == manifest
    # load_dataset reads the dir too (a fresh cache: datasets 5.2 caches local dirs by name, not content)
    assert datasets.load_dataset(str(tmp_path / "mix"), split="train", cache_dir=str(tmp_path / "cache")).to_list() == ds
    assert len(ds) == 400 and Counter(r["source"] for r in ds) == {"agent": drawn["agent"], "general": drawn["general"]}
    for row in ds:
        losses = [t["loss"] for t in row["conversations"]]
        if row["source"] == "general":
            assert losses == [None, True]
        elif row["source_id"] == "os_0":
            assert losses == [None, False, None, True, None, True]
    # the agent rows' trained tokens, counted independently
    agent_rows = [r for r in ds if r["source"] == "agent"]
    expected = sum(len(tok(t["value"], add_special_tokens=False)["input_ids"])
                   for r in agent_rows for t in r["conversations"] if t["loss"] is True)
    assert by_source["agent"] == expected
    assert "eta requested 0.2" in (tmp_path / "mix" / "README.md").read_text()


def test_read_mixture_checks_hashes(tmp_path: Path) -> None:
    from agentinstruct.training.mixture import Mixture, write_mixture

    manifest = {"eta": 1.0, "agentinstruct_version": "x", "rule": "r", "drawn": {"samples": 1, "agent": 1, "general": 0},
                "effective_eta": {"examples": 1.0, "trained_tokens": 1.0}}
    m = Mixture([{"id": "mix_0", "source": "agent", "source_split": "os", "source_id": "os_0", "epoch": 0,
                  "conversations": AGENT[0]["conversations"]}], {}, "r")
    written = write_mixture(tmp_path / "m", m, manifest)
    assert read_mixture(tmp_path / "m")[0][0]["conversations"] == AGENT[0]["conversations"]
    (tmp_path / "m" / written["data_files"][0]["path"]).write_bytes(b"tampered")
    with pytest.raises(ValueError, match="does not match its sha256"):
        read_mixture(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="not a mixture dir"):
        read_mixture(tmp_path)


def test_load_agent_errors_are_clear(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a dataset dir"):
        load_agent(str(tmp_path / "empty"))
    (tmp_path / "rows.jsonl").write_text("{}\n")
    with pytest.raises(ValueError, match="not a file"):
        load_agent(str(tmp_path / "rows.jsonl"))


def test_mix_command(tmp_path: Path, capsys) -> None:
    agent_dir = _agent_dir(tmp_path)
    general = tmp_path / "general.json"
    general.write_text(json.dumps(GENERAL[:40])[:-300])  # cut off mid-file, as the embedded file is
    code = cli.main(["mix", "--agent", str(agent_dir), "--general", str(general), "--eta", "0.25", "--samples", "200",
                     "--seed", "9", "--out", str(tmp_path / "mix")])
    out = capsys.readouterr().out
    assert code == 0
    assert "cut off at character" in out and "wrote 200 examples" in out and "effective eta:" in out
    manifest = json.loads((tmp_path / "mix" / MIXTURE_MANIFEST).read_text())
    (general_source,) = manifest["sources"]["general"]
    assert general_source["stream"]["complete"] is False and general_source["read"] < 40
    assert manifest["eta"] == 0.25 and manifest["seed"] == 9 and manifest["oversample"] is True
    assert cli.main(["mix", "--agent", str(tmp_path / "nope"), "--samples", "5", "--out", str(tmp_path / "x")]) != 0


def test_several_sources_are_drawn_by_weight_within_their_side() -> None:
    other = [{"id": f"kg_{i}", "split": "kg", "conversations": AGENT[0]["conversations"]} for i in range(40)]
    chat, code = GENERAL[:100], GENERAL[100:]
    m = mix([Source("os-runs", AGENT, 1.0), Source("kg-runs", other, 3.0)],
            [Source("chat", chat, 1.0), Source("code", code, 1.0)], eta=0.2, samples=20_000, seed=4)
    by = m.drawn["by_source"]
    n_agent = m.drawn["agent"]
    assert abs(n_agent / 20_000 - 0.2) < 0.02  # eta is the agent side's share, whatever the sources inside it
    assert abs(by["kg-runs"]["drawn"] / n_agent - 0.75) < 0.03 and by["os-runs"]["drawn"] + by["kg-runs"]["drawn"] == n_agent
    assert abs(by["chat"]["drawn"] - by["code"]["drawn"]) < 0.06 * m.drawn["general"]
    assert by["os-runs"]["max_uses"] - by["os-runs"]["drawn"] // 7 <= 1 and by["os-runs"]["side"] == "agent"
    assert Counter(r["source_name"] for r in m.rows) == {k: v["drawn"] for k, v in by.items()}
    # without oversampling every row is used once and the weights still hold
    m = mix([Source("os-runs", AGENT, 1.0), Source("kg-runs", other, 3.0)], [Source("chat", chat)], eta=0.5,
            samples=10_000, seed=0, oversample=False)
    by = m.drawn["by_source"]
    assert (by["os-runs"]["drawn"], by["kg-runs"]["drawn"], by["chat"]["drawn"]) == (7, 21, 28)
    assert max(s["max_uses"] for s in by.values()) == 1
    with pytest.raises(ValueError, match="distinct names"):
        mix([Source("a", AGENT), Source("a", other)], [], eta=1.0, samples=5, seed=0)


def test_mixture_file_and_repeatable_flags(tmp_path: Path, capsys) -> None:
    agent_dir = _agent_dir(tmp_path)
    small, big = tmp_path / "small.jsonl", tmp_path / "big.jsonl"
    small.write_text("".join(json.dumps(g) + "\n" for g in GENERAL[:5]))
    big.write_text("".join(json.dumps(g) + "\n" for g in GENERAL[5:205]))
    spec_file = tmp_path / "mixture.yaml"
    spec_file.write_text(f"eta: 0.1\nsamples: 300\nseed: 2\nmax_repeats: 8\nagent:\n  - path: {agent_dir}\n"
                         f"general:\n  - path: {small}\n    weight: 0.5\n  - path: {big}\n    weight: 2\n")
    assert cli.main(["mix", "--mixture", str(spec_file), "--out", str(tmp_path / "mix")]) == 0
    captured = capsys.readouterr()
    manifest = json.loads((tmp_path / "mix" / MIXTURE_MANIFEST).read_text())
    assert [s["name"] for s in manifest["sources"]["general"]] == [str(small), str(big)]
    assert manifest["eta"] == 0.1 and manifest["seed"] == 2 and manifest["drawn"]["samples"] == 300
    # about 54 draws over 5 rows: the small source is named in a warning; the big one (about 1 use per row) and the
    # agent rows (about 30 draws over 5) are not
    (warning,) = manifest["warnings"]
    assert warning.startswith(f"source {small}: its 5 rows are used up to") and "more than max_repeats 8" in warning
    assert f"warning: source {small}" in captured.err and str(big) not in captured.err
    assert f"general {big}: weight 2" in captured.out
    card = (tmp_path / "mix" / "README.md").read_text()
    assert f"- general: `{small}`, weight 0.5, 5 rows" in card and "- warning: source" in card
    # the same with repeatable flags; a flag given overrides the file
    assert cli.main(["mix", "--mixture", str(spec_file), "--agent", str(agent_dir), "--general", f"{big}=1",
                     "--general", f"{small}=1", "--eta", "0.3", "--out", str(tmp_path / "mix2")]) == 0
    manifest = json.loads((tmp_path / "mix2" / MIXTURE_MANIFEST).read_text())
    assert [(s["name"], s["weight"]) for s in manifest["sources"]["general"]] == [(str(big), 1.0), (str(small), 1.0)]
    assert manifest["eta"] == 0.3
    spec_file.write_text("agent:\n  - path: x\n    weight: -1\n")
    with pytest.raises(ValueError, match=r"mixture.yaml: agent\[0\]\.weight: must be a positive number"):
        load_mixture_spec(spec_file)
    assert cli.main(["mix", "--mixture", str(spec_file), "--out", str(tmp_path / "x")]) != 0


def test_messages_view_is_one_documented_line_that_trl_takes_as_conversational(tmp_path: Path, tok) -> None:
    from trl.data_utils import is_conversational

    agent_dir = _agent_dir(tmp_path)
    build_mixture(MixtureSpec(agent=[SourceSpec(str(agent_dir))], eta=1.0, samples=6), tmp_path / "mix", tok)
    card = (tmp_path / "mix" / "README.md").read_text()
    assert MESSAGES_MAP in card
    scope = {"ds": datasets.load_dataset(str(tmp_path / "mix"), split="train", cache_dir=str(tmp_path / "cache"))}
    exec(MESSAGES_MAP, scope)
    row = scope["ds"][0]
    assert is_conversational({"messages": row["messages"]})
    assert [m["role"] for m in row["messages"]] == [{"human": "user", "gpt": "assistant"}[t["from"]] for t in row["conversations"]]
    assert [m["content"] for m in row["messages"]] == [t["value"] for t in row["conversations"]]
    assert "loss" in row["conversations"][0]  # per-turn loss stays beside the messages
    text = tok.apply_chat_template(row["messages"], tokenize=False)
    assert row["conversations"][-1]["value"].strip() in text
