"""Publishing on the Hugging Face Hub: one commit per release, an immutable ``vX.Y.Z`` tag, verified after the push.

``publish_dataset`` pushes a dataset dir exactly as it is on disk (Parquet,
card, schema, manifest, plots, reports); ``publish_model`` pushes a checkpoint
folder with its model card. Both follow one rule:

- everything goes in ONE commit on ``main`` (files added, changed, and deleted
  when no longer in the local set), made with ``huggingface_hub.create_commit``
  against the head it was planned from;
- a version is a tag ``vX.Y.Z`` that never moves: if the tag exists with the
  same files, publishing again does nothing; with different files it is refused;
- after the push the tag is read back and every file's hash checked.

The token comes from huggingface_hub's usual sources (``HF_TOKEN``, the token
file written by ``hf auth login``) and is never printed or written.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# huggingface_hub 2.x speaks HTTP through httpx2: its HTTPError is the base of every network error the client raises.
import httpx2
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from huggingface_hub.utils.sha import git_hash

from agentinstruct.datasetdir.fileutil import atomic_write_text, sha256_file
from agentinstruct.datasetdir.layout import (CARD, MANIFEST, PLOTS, Asset, data_files, manifest_for, manifest_text,
                                             read_manifest, side_assets)
from agentinstruct.records.recordio import Entry, read_entries
from agentinstruct.records.validation import InvalidRecords, check_entries

VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
# Files the Hub manages itself: never deleted by a publish.
HUB_OWNED = frozenset({".gitattributes"})

Content = Path | bytes


class PublishError(ValueError):
    """A publish that was refused or failed; nothing was changed unless the message says so."""


@dataclass(frozen=True)
class LocalFile:
    """A file to publish: its bytes (or path), sha256, git blob id and size."""

    source: Content
    sha256: str
    git_oid: str
    size: int

    @classmethod
    def of(cls, source: Content) -> "LocalFile":
        """The hashes of ``source``; a file is read in chunks, so publishing a large data file never holds it whole.

        Example:
            >>> _ = Path("blob.txt").write_bytes(b"hello")
            >>> on_disk, in_memory = LocalFile.of(Path("blob.txt")), LocalFile.of(b"hello")
            >>> (on_disk.sha256, on_disk.git_oid, on_disk.size) == (in_memory.sha256, in_memory.git_oid, in_memory.size)
            True
        """
        if isinstance(source, bytes):
            return cls(source, hashlib.sha256(source).hexdigest(), git_hash(source), len(source))
        size = Path(source).stat().st_size
        # A git blob id is the sha1 of "blob {size}\0" and the bytes, so it streams like the sha256.
        sha256, blob = hashlib.sha256(), hashlib.sha1(f"blob {size}\0".encode())
        with Path(source).open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                sha256.update(chunk)
                blob.update(chunk)
        return cls(source, sha256.hexdigest(), blob.hexdigest(), size)

    def matches(self, remote: Any) -> bool:
        """Whether a ``RepoFile`` from the Hub holds these bytes (LFS files by sha256, others by git blob id)."""
        return remote.lfs.sha256 == self.sha256 if remote.lfs else remote.blob_id == self.git_oid


@dataclass(frozen=True)
class Change:
    """One file a publish adds, changes or deletes."""

    kind: str  # added | changed | deleted
    path: str
    size: int | None = None

    def __str__(self) -> str:
        mark = {"added": "+", "changed": "~", "deleted": "-"}[self.kind]
        size = f" ({_human(self.size)})" if self.size is not None else ""
        return f"  {mark} {self.path}{size}"


@dataclass
class PublishResult:
    """What a publish did (or, in a dry run, would do)."""

    repo_id: str
    repo_type: str
    tag: str | None
    status: str  # published | unchanged | dry-run
    changes: list[Change] = field(default_factory=list)
    commit: str | None = None
    verified: int = 0
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        """Human-readable lines for the CLI (never contains the token).

        Example:
            >>> PublishResult("org/x", "dataset", "v1.0.0", "unchanged").render().splitlines()[0]
            'datasets/org/x v1.0.0: already published with identical files; nothing to do'
        """
        where = f"{'datasets/' if self.repo_type == 'dataset' else ''}{self.repo_id}"
        version = f" {self.tag}" if self.tag else ""
        if self.status == "unchanged":
            return f"{where}{version}: already published with identical files; nothing to do"
        head = f"dry run, nothing pushed: {where}{version} would change" if self.status == "dry-run" else f"published {where}{version}"
        lines = [head + (":" if self.changes else ": no file changes")]
        lines += [str(c) for c in self.changes] + [f"  note: {n}" for n in self.notes]
        if self.status == "published":
            target = f"tag {self.tag} -> " if self.tag else ""
            lines.append(f"{target}commit {self.commit}; {self.verified} files verified against the tag")
        return "\n".join(lines)


def _human(size: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return str(size)


def _tag_of(version: str | None) -> str | None:
    if version is None:
        return None
    if not VERSION.match(version):
        raise PublishError(f"version {version!r} is not X.Y.Z (e.g. 1.0.0); the tag will be vX.Y.Z")
    return f"v{version}"


def _api(dry_run: bool, token: str | None = None) -> HfApi:
    token = token or get_token()
    if token is None and not dry_run:
        raise PublishError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (a write token is needed)")
    return HfApi(token=token)


def _remote_files(api: HfApi, repo_id: str, repo_type: str, revision: str) -> dict[str, Any]:
    tree = api.list_repo_tree(repo_id, recursive=True, revision=revision, repo_type=repo_type)
    return {f.path: f for f in tree if hasattr(f, "blob_id")}


def _diff(local: dict[str, LocalFile], remote: dict[str, Any]) -> list[Change]:
    changes = []
    for path, f in sorted(local.items()):
        if path not in remote:
            changes.append(Change("added", path, f.size))
        elif not f.matches(remote[path]):
            changes.append(Change("changed", path, f.size))
    changes += [Change("deleted", p) for p in sorted(remote) if p not in local and p not in HUB_OWNED]
    return changes


def _version_key(tag: str) -> tuple[int, ...] | None:
    match = VERSION.match(tag[1:]) if tag.startswith("v") else None
    return tuple(int(x) for x in match.groups()) if match else None


def _summary(changes: list[Change], limit: int = 5) -> str:
    text = ", ".join(f"{c.kind} {c.path}" for c in changes[:limit])
    return text + (f" and {len(changes) - limit} more" if len(changes) > limit else "")


def push_files(
    files: dict[str, Content],
    repo_id: str,
    *,
    repo_type: str,
    version: str | None = None,
    private: bool = False,
    message: str = "Publish with agentinstruct",
    dry_run: bool = False,
    token: str | None = None,
) -> PublishResult:
    """Make the repo's ``main`` hold exactly ``files`` in one commit, tag it ``v{version}``, verify the tag.

    ``files`` maps paths in the repo to local paths or bytes. Refused (``PublishError``) when the tag exists with
    other files or is older than the newest version tag. ``dry_run`` only reads from the Hub. ``token`` overrides
    huggingface_hub's usual sources.

    Example (needs a Hub server):
        >>> push_files({"README.md": b"# x"}, "org/x", repo_type="model", version="1.0.0")  # doctest: +SKIP
        PublishResult(repo_id='org/x', repo_type='model', tag='v1.0.0', status='published', ...)
    """
    tag = _tag_of(version)
    local = {path: LocalFile.of(source) for path, source in files.items()}
    api = _api(dry_run, token)
    with _hub_errors(repo_id):
        return _push(api, local, repo_id, repo_type, tag, private, message, dry_run)


@contextmanager
def _hub_errors(repo_id: str) -> Iterator[None]:
    """Turn the client's HTTP and connection errors into one clear ``PublishError`` line."""
    try:
        yield
    except HfHubHTTPError as exc:
        raise PublishError(f"the Hub refused a request for {repo_id}: {str(exc).strip().splitlines()[0]}") from exc
    except (httpx2.HTTPError, OSError) as exc:
        raise PublishError(f"could not reach the Hub for {repo_id}: {exc}") from exc


def _push(api: HfApi, local: dict[str, LocalFile], repo_id: str, repo_type: str, tag: str | None, private: bool,
          message: str, dry_run: bool) -> PublishResult:
    result = PublishResult(repo_id, repo_type, tag, "dry-run" if dry_run else "published")
    try:
        info = api.repo_info(repo_id, repo_type=repo_type)
    except RepositoryNotFoundError:
        info = None
    if info is not None:
        tags = {t.name: t.target_commit for t in api.list_repo_refs(repo_id, repo_type=repo_type).tags}
        if tag in tags:
            differs = _diff(local, _remote_files(api, repo_id, repo_type, tags[tag]))
            if differs:
                raise PublishError(
                    f"{repo_id} already has {tag} with other files ({_summary(differs)}); a published version never "
                    "changes: publish these files as a new version")
            result.status, result.commit = "unchanged", tags[tag]
            return result
        newer = [t for t in tags if _version_key(t) and tag and _version_key(t) > _version_key(tag)]
        if newer:
            latest = max(newer, key=_version_key)
            raise PublishError(f"{tag} is older than the newest release {latest} of {repo_id}; publish a newer version")
        if private != bool(info.private):
            result.notes.append(f"the repo exists and stays {'private' if info.private else 'public'} (--private applies when it is created)")
        remote = _remote_files(api, repo_id, repo_type, info.sha)
    else:
        result.notes.append(f"the {repo_type} repo {repo_id} would be created{' (private)' if private else ''}" if dry_run
                            else f"created {'private ' if private else ''}{repo_type} repo {repo_id}")
        remote = {}
    result.changes = _diff(local, remote)
    if dry_run:
        if tag:
            result.notes.append(f"would tag the result {tag}")
        return result
    if info is None:
        api.create_repo(repo_id, repo_type=repo_type, private=private)
        info = api.repo_info(repo_id, repo_type=repo_type)
    operations: list[Any] = [
        CommitOperationAdd(path_in_repo=c.path, path_or_fileobj=_upload_source(local[c.path].source))
        for c in result.changes if c.kind != "deleted"
    ] + [CommitOperationDelete(path_in_repo=c.path) for c in result.changes if c.kind == "deleted"]
    commit = info.sha
    if operations:
        # parent_commit: refuse rather than overwrite a commit that landed since the plan was made.
        commit = api.create_commit(repo_id, operations, commit_message=message, repo_type=repo_type,
                                   parent_commit=info.sha).oid
    if tag:
        api.create_tag(repo_id, tag=tag, revision=commit, tag_message=message, repo_type=repo_type)
    result.commit = commit
    result.verified = _verify(api, local, repo_id, repo_type, tag or commit)
    return result


def _upload_source(source: Content) -> str | bytes:
    return source if isinstance(source, bytes) else str(source)


def _verify(api: HfApi, local: dict[str, LocalFile], repo_id: str, repo_type: str, revision: str) -> int:
    remote = _remote_files(api, repo_id, repo_type, revision)
    differs = _diff(local, remote)
    if differs:
        raise PublishError(f"the pushed {revision} of {repo_id} does not hold the published files ({_summary(differs)})")
    return len(local)


# Datasets


def _listed(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, sha256) of every file a manifest commits to: data files, the schema, plots and reports."""
    schema = manifest["schema_file"]
    return ([(f["path"], f["sha256"]) for f in manifest["data_files"]] + [(schema["path"], schema["sha256"])]
            + [(a["path"], a["sha256"]) for a in manifest.get("assets", [])])


def dataset_files(root: Path, hub_repo: str | None = None) -> dict[str, Content]:
    """Check a dataset dir and return what publishing it uploads, path in repo -> content.

    Refuses (``InvalidRecords`` listing every bad record, or ``PublishError``)
    when a record is invalid, a file does not match its hash in the manifest,
    ``default`` is not the kept part of ``all``, or the card and manifest are not
    the ones the data gives (``agentinstruct card DIR`` rewrites them). With
    ``hub_repo`` the manifest and card name that repo (their bytes are returned,
    the dir is not touched).

    Example (a dir made from the THUDM sample shipped with the package):
        >>> from importlib import resources
        >>> from agentinstruct.records.thudm import import_thudm
        >>> sample = resources.files("agentinstruct.records").joinpath("samples/thudm_sample.jsonl")
        >>> import_thudm(str(sample), Path("out"))
        {'os': 1, 'db': 1, 'alfworld': 2, 'webshop': 2, 'mind2web': 1}
        >>> sorted(dataset_files(Path("out")))[:3]
        ['README.md', 'data/all/alfworld-....parquet', 'data/all/db-....parquet']
        >>> json.loads(dataset_files(Path("out"), hub_repo="org/AgentInstruct")["manifest.json"])["hub_repo"]
        'org/AgentInstruct'
        >>> _ = Path("out/README.md").write_text("edited by hand")
        >>> dataset_files(Path("out"))
        Traceback (most recent call last):
        ...
        agentinstruct.hub.PublishError: out/README.md is not the card the data gives (edited by hand?); run `agentinstruct card out`
    """
    from agentinstruct.datasetdir.card import render_card

    root = Path(root)
    manifest = read_manifest(root)
    if manifest is None:
        raise PublishError(f"{root}: not a dataset dir (no {MANIFEST}); build or import data first")
    files = data_files(root)
    kept: dict[str, int] = {}

    def entries() -> Iterator[Entry]:
        for f in files:
            for entry in read_entries(root / f.path):
                if f.config == "all" and isinstance(entry.record, dict) and isinstance(entry.record.get("filter"), dict):
                    kept[f.split] = kept.get(f.split, 0) + (entry.record["filter"].get("kept") is True)
                yield entry

    report = check_entries(entries())
    if not report.ok:
        raise InvalidRecords(report)
    for f in files:
        if f.config == "default" and kept.get(f.split) != f.rows:
            raise PublishError(f"{root / f.path}: {f.rows} rows, but the all config keeps {kept.get(f.split)} {f.split} records")
    listed = _listed(manifest)
    for path, digest in listed:
        if not (root / path).is_file():
            raise PublishError(f"{root / path}: listed in {MANIFEST} but missing; run `agentinstruct card {root}`")
        if sha256_file(root / path) != digest:
            raise PublishError(f"{root / path}: sha256 differs from {MANIFEST}; run `agentinstruct card {root}`")
    assets = [Asset(a["path"], a["sha256"], a["bytes"]) for a in manifest.get("assets", [])]
    expected = manifest_for(root, files, assets, manifest.get("hub_repo"))
    beside = {a.path for a in side_assets(root)}
    if manifest != expected or beside != {a.path for a in assets if not a.path.startswith(f"{PLOTS}/")}:
        raise PublishError(f"{root / MANIFEST} is not the one the files give; run `agentinstruct card {root}`")
    if (root / CARD).read_text(encoding="utf-8") != render_card(root):
        raise PublishError(f"{root / CARD} is not the card the data gives (edited by hand?); run `agentinstruct card {root}`")
    out: dict[str, Content] = {path: root / path for path, _ in listed}
    out[MANIFEST], out[CARD] = root / MANIFEST, root / CARD
    if hub_repo and manifest.get("hub_repo") != hub_repo:
        stamped = {**manifest, "hub_repo": hub_repo}
        out[MANIFEST] = manifest_text(stamped).encode()
        out[CARD] = render_card(root, stamped).encode()
    return out


def publish_dataset(
    root: Path,
    repo_id: str,
    version: str,
    *,
    private: bool = False,
    dry_run: bool = False,
    message: str | None = None,
) -> PublishResult:
    """Validate a dataset dir, push it to the dataset repo ``repo_id`` in one commit, tag ``v{version}``, verify.

    The dir's manifest and card are stamped with ``repo_id`` (so the card's load
    examples name it) before the push; a dry run leaves the dir as it is.

    Example (needs a Hub server):
        >>> publish_dataset(Path("out"), "org/AgentInstruct", "1.0.0").status  # doctest: +SKIP
        'published'
    """
    root = Path(root)
    if _tag_of(version) is None:
        raise PublishError("a dataset release needs a version X.Y.Z")
    files = dataset_files(root, hub_repo=repo_id)
    result = push_files(files, repo_id, repo_type="dataset", version=version, private=private,
                        message=message or f"Release v{version}", dry_run=dry_run)
    if not dry_run:
        # The dir now equals the tag: write the stamped manifest, then the card (the commit order of datasetdir).
        for name in (MANIFEST, CARD):
            if isinstance(files[name], bytes):
                atomic_write_text(root / name, files[name].decode())
        if result.status == "published":
            with _hub_errors(repo_id):
                _verify_manifest(repo_id, result.tag)
    return result


def _verify_manifest(repo_id: str, tag: str) -> None:
    """Read ``manifest.json`` back from the tag and check every listed file's sha256 on the Hub against it."""
    api = HfApi(token=get_token())
    with tempfile.TemporaryDirectory() as cache:
        path = api.hf_hub_download(repo_id, MANIFEST, repo_type="dataset", revision=tag, cache_dir=cache)
        manifest = json.loads(Path(path).read_text(encoding="utf-8"))
        remote = _remote_files(api, repo_id, "dataset", tag)
        for path, digest in _listed(manifest):
            entry = remote.get(path)
            if entry is not None and not entry.lfs:
                got = LocalFile.of(Path(api.hf_hub_download(repo_id, path, repo_type="dataset", revision=tag, cache_dir=cache))).sha256
            else:
                got = entry.lfs.sha256 if entry is not None else None
            if got != digest:
                raise PublishError(f"{repo_id}@{tag}: {path} does not match {MANIFEST} (sha256 {got} != {digest})")


# Models


def publish_model(
    folder: Path,
    repo_id: str,
    version: str | None = None,
    *,
    private: bool = False,
    message: str = "Upload model",
    dry_run: bool = False,
    token: str | None = None,
) -> PublishResult:
    """Push a checkpoint folder (weights, config, tokenizer, ``README.md`` model card) to a model repo in one commit.

    The repo's ``main`` ends up holding exactly the folder's files; with
    ``version`` the commit is tagged ``v{version}`` under the same immutable-tag
    rule as datasets. Hidden files and folders (``.cache``, ``.git``) are skipped.

    Example (needs a Hub server):
        >>> publish_model(Path("runs/agentlm-7b/final"), "org/AgentLM-7B", "1.0.0").tag  # doctest: +SKIP
        'v1.0.0'
    """
    folder = Path(folder)
    if not (folder / "README.md").is_file():
        raise PublishError(f"{folder}: no README.md model card; write one before publishing")
    files: dict[str, Content] = {
        p.relative_to(folder).as_posix(): p
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }
    return push_files(files, repo_id, repo_type="model", version=version, private=private, message=message,
                      dry_run=dry_run, token=token)


def publish_model_card(
    repo_id: str,
    update: Callable[[str], str],
    *,
    message: str = "Update model card",
    dry_run: bool = False,
    token: str | None = None,
) -> PublishResult:
    """Rewrite the ``README.md`` model card of an existing model repo in one commit on ``main``, verified.

    ``update`` gets the card on ``main`` (empty when there is none) and returns the new one; every other file stays.
    The commit is made against the head the card was read from (``parent_commit``), so a commit that landed in
    between is never overwritten; an unchanged card makes no commit. ``agentinstruct evaluate --push`` writes its
    results into the card's ``model-index`` this way.

    Example (needs a Hub server):
        >>> publish_model_card("org/AgentLM-7B", lambda card: card.replace("draft", "final")).status  # doctest: +SKIP
        'published'
    """
    api = _api(dry_run, token)
    result = PublishResult(repo_id, "model", None, "dry-run" if dry_run else "published")
    with _hub_errors(repo_id):
        try:
            info = api.repo_info(repo_id, repo_type="model")
        except RepositoryNotFoundError:
            raise PublishError(f"no model repo {repo_id} on the Hub; publish the checkpoint first") from None
        remote = _remote_files(api, repo_id, "model", info.sha)
        old = ""
        if CARD in remote:
            with tempfile.TemporaryDirectory() as cache:
                old = Path(api.hf_hub_download(repo_id, CARD, revision=info.sha, cache_dir=cache)).read_text(encoding="utf-8")
        new = LocalFile.of(update(old).encode())
        result.changes = _diff({CARD: new}, {CARD: remote[CARD]} if CARD in remote else {})
        if not result.changes:
            result.status, result.commit = "unchanged", info.sha
            return result
        if dry_run:
            return result
        result.commit = api.create_commit(repo_id, [CommitOperationAdd(path_in_repo=CARD, path_or_fileobj=new.source)],
                                          commit_message=message, repo_type="model", parent_commit=info.sha).oid
        pushed = _remote_files(api, repo_id, "model", result.commit).get(CARD)
        if pushed is None or not new.matches(pushed):
            raise PublishError(f"the pushed commit {result.commit} of {repo_id} does not hold the new {CARD}")
        result.verified = 1
    return result
