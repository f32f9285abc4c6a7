"""``agentinstruct publish`` against the local Hub test double, through the real huggingface_hub and datasets code."""

from __future__ import annotations

from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from factory import record
from huggingface_hub import HfApi

from agentinstruct.cli import main
from agentinstruct.datasetdir.layout import iter_records, read_manifest
from agentinstruct.datasetdir.release import refresh, write_split
from agentinstruct.hub import PublishError, publish_dataset
from agentinstruct.records.schema import features

REPO = "agentinstruct-test/AgentInstruct"


def _dir(root: Path, n: int = 3) -> Path:
    write_split(root, "os", [record(i, kept=i != 1, reward=1.0 if i != 1 else 0.0) for i in range(n)])
    write_split(root, "db", [record(0, split="db"), record(1, split="db", kept=False, reward=0.5)])
    return root


def _publish(root: Path, version: str, *extra: str) -> int:
    return main(["publish", str(root), "--repo", REPO, "--version", version, *extra])


def _commits(hub) -> list[str]:
    return [r for r in hub.requests if r.startswith("POST /api/datasets/") and "/commit/" in r]


def _load(*args: str, split: str, revision: str | None = None) -> datasets.Dataset:
    return datasets.load_dataset(REPO, *args, split=split, revision=revision)


def test_publish_then_load_at_the_tag_gives_exactly_the_rows_and_features(local_hub, tmp_path: Path, capsys) -> None:
    root = _dir(tmp_path / "ds")
    assert _publish(root, "1.0.0") == 0
    out = capsys.readouterr().out
    assert "tag v1.0.0 -> commit" in out and "files verified against the tag" in out
    assert len(_commits(local_hub)) == 1  # one commit holds the whole release
    kept = _load(split="os", revision="v1.0.0")
    assert kept.features == features()
    assert kept.to_list() == list(iter_records(root, "default", "os"))
    every = _load("all", split="db", revision="v1.0.0")
    assert every.to_list() == list(iter_records(root, "all", "db"))
    assert [r["filter"]["reason"] for r in every] == [None, "reward 0.0 < 1.0"]
    files = set(HfApi().list_repo_files(REPO, repo_type="dataset", revision="v1.0.0"))
    manifest = read_manifest(root)
    assert manifest["hub_repo"] == REPO  # the dir now names its repo, as the tag does
    listed = {f["path"] for f in manifest["data_files"]} | {a["path"] for a in manifest["assets"]}
    assert files == listed | {"README.md", "manifest.json", "trajectory.schema.json", ".gitattributes"}
    assert any(p.startswith("plots/") and p.endswith(".png") for p in files)
    card = (root / "README.md").read_text()
    assert f'load_dataset("{REPO}", split="os", revision="v1.0.0")' in card


def test_main_moves_and_tags_stay(local_hub, tmp_path: Path) -> None:
    root = _dir(tmp_path / "ds")
    assert _publish(root, "1.0.0") == 0
    old_os = list(iter_records(root, "default", "os"))
    old_paths = {f["path"] for f in read_manifest(root)["data_files"] if f["split"] == "os"}
    write_split(root, "os", [record(7)])
    assert _publish(root, "1.1.0") == 0
    api = HfApi()
    refs = {t.name: t.target_commit for t in api.list_repo_refs(REPO, repo_type="dataset").tags}
    assert set(refs) == {"v1.0.0", "v1.1.0"} and refs["v1.0.0"] != refs["v1.1.0"]
    assert api.dataset_info(REPO).sha == refs["v1.1.0"]
    assert _load(split="os", revision="v1.0.0").to_list() == old_os
    assert _load(split="os")["id"] == ["os_7"]
    # Files no longer in the manifest are deleted on main, and still there at the old tag.
    main_files = set(api.list_repo_files(REPO, repo_type="dataset"))
    assert not old_paths & main_files
    assert old_paths <= set(api.list_repo_files(REPO, repo_type="dataset", revision="v1.0.0"))


def test_a_version_never_changes(local_hub, tmp_path: Path, capsys) -> None:
    root = _dir(tmp_path / "ds")
    assert _publish(root, "1.0.0") == 0
    tag = HfApi().list_repo_refs(REPO, repo_type="dataset").tags[0]
    commits = len(_commits(local_hub))
    capsys.readouterr()

    assert _publish(root, "1.0.0") == 0  # identical files: a no-op
    assert "already published with identical files; nothing to do" in capsys.readouterr().out
    assert len(_commits(local_hub)) == commits

    write_split(root, "os", [record(9)])
    assert _publish(root, "1.0.0") == 2
    err = capsys.readouterr().err
    assert f"{REPO} already has v1.0.0 with other files" in err and "publish these files as a new version" in err
    assert len(_commits(local_hub)) == commits
    assert HfApi().list_repo_refs(REPO, repo_type="dataset").tags == [tag]

    assert _publish(root, "0.9.0") == 2
    assert "older than the newest release v1.0.0" in capsys.readouterr().err
    with pytest.raises(PublishError, match="not X.Y.Z"):
        publish_dataset(root, REPO, "1.0")


def test_dry_run_lists_changes_and_pushes_nothing(local_hub, tmp_path: Path, capsys) -> None:
    root = _dir(tmp_path / "ds")
    assert _publish(root, "1.0.0") == 0
    write_split(root, "os", [record(4), record(5)])
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    requests = len(local_hub.requests)
    capsys.readouterr()
    assert _publish(root, "1.1.0", "--dry-run") == 0
    out = capsys.readouterr().out
    assert out.startswith(f"dry run, nothing pushed: datasets/{REPO} v1.1.0 would change:")
    new = {f["path"] for f in read_manifest(root)["data_files"] if f["split"] == "os"}
    for path in new:
        assert f"  + {path}" in out
    assert "  ~ README.md" in out and "  ~ manifest.json" in out
    assert out.count("  - data/") == 2  # the two os files of v1.0.0
    assert "would tag the result v1.1.0" in out
    written = [r for r in local_hub.requests[requests:] if not r.startswith(("GET", "HEAD"))]
    assert written == []
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_invalid_records_are_refused_and_listed_before_any_request(local_hub, tmp_path: Path, capsys) -> None:
    root = _dir(tmp_path / "ds")
    path = next((root / "data" / "all").glob("os-*.parquet"))
    table = pq.read_table(path).to_pylist()
    table[2]["conversations"][0]["loss"] = True
    table[0]["reward"] = 3.0
    pq.write_table(pq.read_table(path).from_pylist(table, schema=pq.read_schema(path)), path)
    refresh(root)  # the manifest and card now agree with the bad file: only validation can catch it
    assert _publish(root, "1.0.0") == 1
    err = capsys.readouterr().err
    assert "row 0 id=os_0 /reward" in err and "row 2 id=os_2 /conversations/0/loss" in err
    assert "2 invalid" in err
    assert local_hub.requests == []


def test_a_card_edited_by_hand_is_refused(local_hub, tmp_path: Path, capsys) -> None:
    root = _dir(tmp_path / "ds")
    (root / "README.md").write_text((root / "README.md").read_text() + "\nmy note\n")
    assert _publish(root, "1.0.0") == 2
    assert "is not the card the data gives" in capsys.readouterr().err
    assert local_hub.requests == []


def test_the_token_never_appears_in_output_card_manifest_or_repo(local_hub, tmp_path: Path, capsys) -> None:
    root = _dir(tmp_path / "ds")
    assert _publish(root, "1.0.0", "--dry-run") == 0
    assert _publish(root, "1.0.0", "--private") == 0
    write_split(root, "os", [record(3)])
    assert _publish(root, "1.0.0") == 2  # refused: its message must not leak the token either
    captured = capsys.readouterr()
    assert local_hub.token not in captured.out + captured.err
    for path in [*root.rglob("*"), *local_hub.store.root.rglob("*")]:
        if path.is_file():
            assert local_hub.token.encode() not in path.read_bytes(), path
    # The repo was created private: without the token it cannot be read.
    assert HfApi().dataset_info(REPO).private is True
    with pytest.raises(Exception, match="Repository Not Found"):
        HfApi(token=False).dataset_info(REPO)


def test_publishing_without_a_token_is_a_clear_error(local_hub, tmp_path: Path, monkeypatch, capsys) -> None:
    root = _dir(tmp_path / "ds")
    monkeypatch.delenv("HF_TOKEN")
    assert _publish(root, "1.0.0") == 2
    assert "no Hugging Face token: set HF_TOKEN or run `hf auth login`" in capsys.readouterr().err
