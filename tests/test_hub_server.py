"""The local Hub test double answers the real huggingface_hub and datasets clients as the Hub does."""

from __future__ import annotations

import datasets
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

REPO = "org/scratch"


def test_dataset_push_to_hub_and_load_at_a_tag(local_hub) -> None:
    api = HfApi()
    first = datasets.Dataset.from_dict({"id": ["a", "b", "c"], "n": [1, 2, 3]})
    first.push_to_hub(REPO)
    api.create_tag(REPO, tag="v1", repo_type="dataset")
    datasets.Dataset.from_dict({"id": ["d"], "n": [4]}).push_to_hub(REPO)
    files = api.list_repo_files(REPO, repo_type="dataset")
    shard = next(f for f in api.list_repo_tree(REPO, "data", repo_type="dataset"))
    assert shard.lfs is not None and shard.lfs.size == shard.size  # Parquet shards went through LFS
    assert {".gitattributes", "README.md"} <= set(files)
    assert datasets.load_dataset(REPO, split="train", revision="v1").to_dict() == first.to_dict()
    assert datasets.load_dataset(REPO, split="train")["id"] == ["d"]


def test_commits_tags_branches_and_reads(local_hub, tmp_path) -> None:
    api = HfApi()
    url = api.create_repo(REPO, repo_type="model")
    assert url == f"{local_hub.endpoint}/{REPO}"
    with pytest.raises(HfHubHTTPError, match="409"):
        api.create_repo(REPO, repo_type="model")
    api.create_repo(REPO, repo_type="model", exist_ok=True)
    weights = bytes(range(256)) * 64
    one = api.create_commit(REPO, [CommitOperationAdd("w/model.bin", weights), CommitOperationAdd("a.txt", b"hello")],
                            commit_message="one")
    two = api.create_commit(REPO, [CommitOperationDelete("a.txt"), CommitOperationAdd("b.txt", b"bye")],
                            commit_message="two", parent_commit=one.oid)
    with pytest.raises(HfHubHTTPError, match="412"):  # stale parent: refused, not overwritten
        api.create_commit(REPO, [CommitOperationAdd("c.txt", b"x")], commit_message="late", parent_commit=one.oid)
    api.create_tag(REPO, tag="v1", revision=one.oid)
    with pytest.raises(HfHubHTTPError, match="409"):
        api.create_tag(REPO, tag="v1")
    api.create_branch(REPO, branch="ckpt-100", revision=one.oid)
    refs = api.list_repo_refs(REPO)
    assert {t.name: t.target_commit for t in refs.tags} == {"v1": one.oid}
    assert {b.name: b.target_commit for b in refs.branches} == {"main": two.oid, "ckpt-100": one.oid}
    assert [c.title for c in api.list_repo_commits(REPO)] == ["two", "one", "initial commit"]
    assert set(api.list_repo_files(REPO)) == {".gitattributes", "w/model.bin", "b.txt"}
    assert set(api.list_repo_files(REPO, revision="v1")) == {".gitattributes", "w/model.bin", "a.txt"}
    tree = {f.path: f for f in api.list_repo_tree(REPO, recursive=True)}
    assert tree["w/model.bin"].lfs.sha256 and tree["b.txt"].lfs is None and "w" in tree
    info = api.get_paths_info(REPO, ["b.txt", "w", "missing"])
    assert [type(i).__name__ for i in info] == ["RepoFile", "RepoFolder"]
    path = hf_hub_download(REPO, "w/model.bin", revision="ckpt-100", cache_dir=tmp_path)
    assert open(path, "rb").read() == weights
    assert open(hf_hub_download(REPO, "a.txt", revision="v1", cache_dir=tmp_path)).read() == "hello"
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "a.txt", cache_dir=tmp_path)
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree(REPO, "nope"))
    with pytest.raises(RevisionNotFoundError):
        api.model_info(REPO, revision="v9")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("org/none")
    api.delete_tag(REPO, tag="v1")
    assert api.list_repo_refs(REPO).tags == []


def test_writes_need_the_token(local_hub) -> None:
    with pytest.raises(HfHubHTTPError, match="401"):
        HfApi(token="hf_wrong").create_repo(REPO, repo_type="dataset")
    with pytest.raises(HfHubHTTPError, match="401"):
        HfApi(token=False).create_repo(REPO, repo_type="dataset")
    assert not [r for r in local_hub.requests if "/commit/" in r]
