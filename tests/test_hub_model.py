"""``publish_model``: a checkpoint folder and its model card in one commit, under the immutable-tag rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import HfApi, hf_hub_download

from agentinstruct.hub import PublishError, publish_model

REPO = "agentinstruct-test/AgentLM-tiny"


def _checkpoint(folder: Path, weights: bytes = b"\0\1\2" * 1000) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "README.md").write_text("---\nlicense: apache-2.0\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct\n---\n# AgentLM tiny\n")
    (folder / ".cache").mkdir(exist_ok=True)
    (folder / ".cache" / "junk").write_text("not published")
    return folder


def test_publish_model_one_commit_tag_and_immutability(local_hub, tmp_path: Path) -> None:
    folder = _checkpoint(tmp_path / "ckpt")
    result = publish_model(folder, REPO, "0.1.0", message="AgentLM tiny 0.1.0")
    assert result.status == "published" and result.tag == "v0.1.0" and result.verified == 3
    api = HfApi()
    assert set(api.list_repo_files(REPO, revision="v0.1.0")) == {".gitattributes", "config.json", "model.safetensors", "README.md"}
    assert [c.title for c in api.list_repo_commits(REPO)] == ["AgentLM tiny 0.1.0", "initial commit"]
    weights = hf_hub_download(REPO, "model.safetensors", revision="v0.1.0", cache_dir=tmp_path / "dl")
    assert Path(weights).read_bytes() == (folder / "model.safetensors").read_bytes()

    assert publish_model(folder, REPO, "0.1.0").status == "unchanged"
    (folder / "model.safetensors").write_bytes(b"\0\x09" * 1000)
    with pytest.raises(PublishError, match="already has v0.1.0 with other files .*changed model.safetensors"):
        publish_model(folder, REPO, "0.1.0")
    (folder / "config.json").unlink()
    result = publish_model(folder, REPO, "0.2.0")
    assert {(c.kind, c.path) for c in result.changes} == {("changed", "model.safetensors"), ("deleted", "config.json")}
    assert "config.json" in api.list_repo_files(REPO, revision="v0.1.0")
    assert "config.json" not in api.list_repo_files(REPO)


def test_publish_model_without_version_pushes_untagged_and_needs_a_card(local_hub, tmp_path: Path) -> None:
    folder = _checkpoint(tmp_path / "ckpt")
    result = publish_model(folder, REPO, private=True)
    assert result.tag is None and result.commit == HfApi().model_info(REPO).sha
    assert HfApi().list_repo_refs(REPO).tags == []
    (folder / "README.md").unlink()
    with pytest.raises(PublishError, match="no README.md model card"):
        publish_model(folder, REPO)
