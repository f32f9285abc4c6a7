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
from agentinstruct.training.mixture import MIXTURE_MANIFEST, build_mixture, load_agent, mix, read_mixture

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
    manifest = build_mixture(str(agent_dir), str(general), 0.2, 400, 5, tmp_path / "mix", tok)
    on_disk = json.loads((tmp_path / "mix" / MIXTURE_MANIFEST).read_text())
    assert on_disk == manifest
    assert manifest["sources"]["agent"]["kind"] == "dir" and len(manifest["sources"]["agent"]["manifest_sha256"]) == 64
    assert manifest["sources"]["agent"]["rows"] == 3 and len(manifest["sources"]["agent"]["data_files"]) == 3
    assert manifest["sources"]["general"]["source"]["sha256"] and manifest["sources"]["general"]["dropped"] == {"no_conversations": 1}
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
    assert "general data cut off at character" in out and "wrote 200 examples" in out and "effective eta:" in out
    manifest = json.loads((tmp_path / "mix" / MIXTURE_MANIFEST).read_text())
    assert manifest["sources"]["general"]["stream"]["complete"] is False and manifest["sources"]["general"]["read"] < 40
    assert manifest["eta"] == 0.25 and manifest["seed"] == 9 and manifest["oversample"] is True
    assert cli.main(["mix", "--agent", str(tmp_path / "nope"), "--samples", "5", "--out", str(tmp_path / "x")]) != 0
