"""A local test double of the Hugging Face Hub HTTP API, for tests only.

It speaks the endpoints that ``huggingface_hub`` 2.x and ``datasets`` use to
create repos, commit (regular and LFS files, deletions), tag, branch and read
files back, so the real client code paths run end to end against 127.0.0.1:

- ``POST /api/repos/create``, ``DELETE /api/repos/delete``, ``GET /api/whoami-v2`` (the user local-tester, member of
  the org agentinstruct-test; an optional read-role token, refused on writes with 403), ``POST /api/validate-yaml``
- ``GET /api/{type}s/{ns}/{name}[/revision/{rev}]`` (repo info, ``?blobs=true`` for file metadata)
- ``POST .../preupload/{rev}``, ``POST .../commit/{rev}`` (NDJSON), ``POST|DELETE .../tag/{rev}``,
  ``POST|DELETE .../branch/{name}``, ``GET .../refs``, ``GET .../commits/{rev}``,
  ``GET .../tree/{rev}[/{path}]``, ``POST .../paths-info/{rev}``
- the Git LFS batch API ``POST /{prefix}{ns}/{name}.git/info/lfs/objects/batch`` and basic transfers
  (``PUT /lfs/objects/{oid}``, ``POST /lfs/verify``)
- ``HEAD|GET /{prefix}{ns}/{name}/resolve/{rev}/{path}`` with ``X-Repo-Commit``, ``ETag``, ``Range``

Errors carry the ``X-Error-Code`` the client maps to exceptions (``RepoNotFound``,
``RevisionNotFound``, ``EntryNotFound``). Xet storage is not spoken: run the client
with ``HF_HUB_DISABLE_XET=1``. Pull requests, gating and pagination are out of scope.

Storage is git-like and lives in a temp dir: content-addressed blobs
(``objects/``), immutable commits with ids and parents (``repos/.../commits/``),
and refs (branches, tags) in ``refs.json``. Each commit holds a full snapshot of
the repo's files, so any revision can be read back exactly.

``LocalHub`` runs the server in a thread; ``hub_environment`` points
``huggingface_hub`` and ``datasets`` at it (the ``local_hub`` fixture in
conftest.py uses both).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
# What a new repo's .gitattributes routes through LFS, as on the Hub (a subset of its default list).
GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in ("*.arrow", "*.bin", "*.gguf", "*.h5", "*.jpg", "*.jpeg", "*.npy", "*.onnx", "*.parquet",
                    "*.png", "*.pt", "*.pth", "*.safetensors", "*.tar", "*.gz", "*.zip", "*.zst", "*tfevents*")
)
LFS_SIZE = 10 * 1024 * 1024  # the Hub sends files this large through LFS whatever their name


class HubError(Exception):
    """An HTTP error answer: status, ``X-Error-Code`` and message."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None,
                 body: dict[str, Any] | None = None):
        super().__init__(message)
        self.status, self.code, self.headers, self.body = status, code, headers or {}, body or {}


def git_blob_oid(data: bytes) -> str:
    """Git's object id of a blob: sha1 of ``blob {size}\\0`` + content."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The Git LFS pointer file that stands in the git tree for an LFS object."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Blob:
    """A file in a snapshot: content hash, size, and whether it is stored through LFS."""

    sha256: str
    size: int
    lfs: bool
    oid: str  # git object id: of the content, or of the LFS pointer


@dataclass
class Commit:
    oid: str
    parent: str | None
    title: str
    message: str
    date: str
    files: dict[str, Blob]


@dataclass
class Repo:
    type: str
    id: str
    private: bool
    created: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


class HubStore:
    """Repos, commits, refs and blobs, persisted under ``root`` (one lock guards every change)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lock = threading.RLock()

    # blobs
    def object_path(self, sha256: str) -> Path:
        return self.root / "objects" / sha256[:2] / sha256

    def has_object(self, sha256: str, size: int | None = None) -> bool:
        path = self.object_path(sha256)
        return path.exists() and (size is None or path.stat().st_size == size)

    def put_object(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        path = self.object_path(sha)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{threading.get_ident()}")
            tmp.write_bytes(data)
            tmp.replace(path)
        return sha

    def read_object(self, sha256: str) -> bytes:
        return self.object_path(sha256).read_bytes()

    def blob(self, data: bytes, lfs: bool) -> Blob:
        sha = self.put_object(data)
        oid = git_blob_oid(lfs_pointer(sha, len(data))) if lfs else git_blob_oid(data)
        return Blob(sha, len(data), lfs, oid)

    # repos
    def repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, f"Repository {repo_id} ({repo_type}) not found", "RepoNotFound")
        return repo

    def create_repo(self, repo_type: str, repo_id: str, private: bool, url: str) -> Repo:
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                raise HubError(409, f"You already created this {repo_type} repo: {repo_id}", body={"url": url})
            repo = Repo(repo_type, repo_id, private, _now())
            self.repos[(repo_type, repo_id)] = repo
            initial = {".gitattributes": self.blob(GITATTRIBUTES.encode(), lfs=False)}
            self.add_commit(repo, "main", None, "initial commit", "", initial)
            return repo

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        with self.lock:
            self.repo(repo_type, repo_id)
            del self.repos[(repo_type, repo_id)]

    def resolve(self, repo: Repo, revision: str) -> Commit:
        """The commit a branch, tag, ``refs/heads|tags/...`` name or commit id points to."""
        rev = unquote(revision)
        for prefix, refs in (("refs/heads/", repo.branches), ("refs/tags/", repo.tags)):
            if rev.startswith(prefix) and rev[len(prefix):] in refs:
                return repo.commits[refs[rev[len(prefix):]]]
        oid = repo.branches.get(rev) or repo.tags.get(rev) or (rev if rev in repo.commits else None)
        if oid is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return repo.commits[oid]

    def add_commit(self, repo: Repo, branch: str, parent: str | None, title: str, message: str,
                   files: dict[str, Blob]) -> Commit:
        date = _now()
        canon = json.dumps([parent, sorted((p, b.oid) for p, b in files.items()), title, message, date, len(repo.commits)])
        commit = Commit(hashlib.sha1(canon.encode()).hexdigest(), parent, title, message, date, dict(files))
        repo.commits[commit.oid] = commit
        repo.branches[branch] = commit.oid
        self._persist(repo, commit)
        return commit

    def _persist(self, repo: Repo, commit: Commit | None = None) -> None:
        base = self.root / "repos" / repo.type / repo.id
        (base / "commits").mkdir(parents=True, exist_ok=True)
        if commit is not None:
            data = {**asdict(commit), "files": {p: asdict(b) for p, b in commit.files.items()}}
            (base / "commits" / f"{commit.oid}.json").write_text(json.dumps(data, indent=1))
        refs = {"private": repo.private, "branches": repo.branches, "tags": repo.tags}
        (base / "refs.json").write_text(json.dumps(refs, indent=1))

    def set_ref(self, repo: Repo, kind: str, name: str, oid: str | None) -> None:
        refs = repo.tags if kind == "tag" else repo.branches
        if oid is None:
            refs.pop(name, None)
        else:
            refs[name] = oid
        self._persist(repo)

    def upload_mode(self, repo: Repo, commit: Commit, path: str, size: int, sample: bytes) -> str:
        attributes = commit.files.get(".gitattributes")
        text = self.read_object(attributes.sha256).decode() if attributes else ""
        patterns = [line.split()[0] for line in text.splitlines() if "filter=lfs" in line]
        name = path.rsplit("/", 1)[-1]
        lfs = size >= LFS_SIZE or b"\0" in sample or any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(path, p) for p in patterns)
        return "lfs" if lfs else "regular"


def _tree_entry(path: str, blob: Blob) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "file", "oid": blob.oid, "size": blob.size, "path": path}
    if blob.lfs:
        entry["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": len(lfs_pointer(blob.sha256, blob.size))}
    return entry


def _folder_entry(path: str, files: dict[str, Blob]) -> dict[str, Any]:
    inside = sorted((p, b.oid) for p, b in files.items() if p.startswith(path + "/"))
    return {"type": "directory", "oid": hashlib.sha1(json.dumps(inside).encode()).hexdigest(), "size": 0, "path": path}


def _folders(files: dict[str, Blob]) -> set[str]:
    return {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}


class HubHandler(BaseHTTPRequestHandler):
    """Routes requests to the store; every answer has a Content-Length so connections stay alive."""

    protocol_version = "HTTP/1.1"
    server: "HubHTTPServer"

    # plumbing
    def log_message(self, format: str, *args: Any) -> None:
        self.server.requests.append(f"{self.command} {self.path}")

    def _body(self) -> bytes:
        return self._raw

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _json_body(self) -> Any:
        body = self._body()
        try:
            return json.loads(body or b"{}")
        except json.JSONDecodeError as exc:
            raise HubError(400, f"body is not JSON: {exc}") from exc

    def _send(self, status: int, body: bytes = b"", content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), headers=headers)

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth[len("Bearer "):] if auth.startswith("Bearer ") else None

    def _check_auth(self, write: bool, repo: Repo | None = None) -> None:
        token = self._token()
        if token is not None and token not in (self.server.token, self.server.read_token):
            raise HubError(401, "Invalid credentials in Authorization header", headers={"X-Error-Message": "Invalid credentials in Authorization header"})
        if write and token is not None and token == self.server.read_token:
            raise HubError(403, "You don't have the rights to create or write this repo: your token has the read role")
        if token is None and (write or (repo is not None and repo.private)):
            if repo is not None and repo.private:
                raise HubError(404, f"Repository {repo.id} not found", "RepoNotFound")
            raise HubError(401, "You must be authenticated to do this", headers={"X-Error-Message": "Invalid username or password."})

    def _dispatch(self) -> None:
        # Read the whole body first: an error answered before reading it would leave it in the kept-alive connection.
        self._raw = self._read_body()
        try:
            self._route()
        except HubError as err:
            headers = {**err.headers, **({"X-Error-Code": err.code} if err.code else {})}
            headers.setdefault("X-Error-Message", str(err))
            self._send_json({"error": str(err), **err.body}, err.status, headers)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch

    # routing
    def _route(self) -> None:
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        query = parse_qs(url.query)
        method = self.command
        if parts[:2] == ["api", "repos"] and len(parts) == 3:
            return self._repos(parts[2])
        if parts == ["api", "whoami-v2"]:
            self._check_auth(write=False)
            if self._token() is None:
                raise HubError(401, "You must be authenticated to do this")
            role = "read" if self._token() == self.server.read_token else "write"
            orgs = [{"type": "org", "name": "agentinstruct-test", "roleInOrg": "write"}]
            return self._send_json({"type": "user", "name": "local-tester", "fullname": "Local Tester", "orgs": orgs,
                                    "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": role}}})
        if parts == ["api", "validate-yaml"]:
            return self._validate_yaml()
        if parts[:2] == ["lfs", "objects"] and len(parts) == 3 and method == "PUT":
            return self._lfs_put(parts[2])
        if parts == ["lfs", "verify"]:
            body = self._json_body()
            if not self.server.store.has_object(body.get("oid", ""), body.get("size")):
                raise HubError(404, f"LFS object {body.get('oid')} not uploaded")
            return self._send_json({"success": True})
        if parts[0] == "api" and len(parts) >= 4 and parts[1] in ("models", "datasets", "spaces"):
            return self._repo_api(parts[1][:-1], f"{parts[2]}/{parts[3]}", parts[4:], query)
        repo_type, rest = "model", parts
        if parts[0] in ("datasets", "spaces"):
            repo_type, rest = parts[0][:-1], parts[1:]
        if len(rest) >= 3 and rest[1].endswith(".git") and rest[2:] == ["info", "lfs", "objects", "batch"]:
            return self._lfs_batch(repo_type, f"{rest[0]}/{rest[1][:-4]}")
        if len(rest) >= 5 and rest[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(repo_type, f"{rest[0]}/{rest[1]}", rest[3], unquote("/".join(rest[4:])))
        raise HubError(404, f"no route for {method} {url.path} in the local Hub test double")

    def _repos(self, action: str) -> None:
        self._check_auth(write=True)
        body = self._json_body()
        repo_type = body.get("type") or "model"
        repo_id = f"{body['organization']}/{body['name']}" if body.get("organization") else f"local-tester/{body['name']}"
        if action == "create" and self.command == "POST":
            private = body.get("visibility") == "private" or bool(body.get("private"))
            url = f"{self.server.endpoint}/{PREFIXES[repo_type]}{repo_id}"
            self.server.store.create_repo(repo_type, repo_id, private, url)
            return self._send_json({"url": url, "name": repo_id, "id": repo_id})
        if action == "delete" and self.command == "DELETE":
            self.server.store.delete_repo(repo_type, repo_id)
            return self._send(200, b"")
        raise HubError(404, f"no route for {self.command} /api/repos/{action}")

    def _validate_yaml(self) -> None:
        content = self._json_body().get("content", "")
        match = re.match(r"^---\s*\n(.*?)\n---\s*\n", content, re.DOTALL)
        if match:
            try:
                meta = yaml.safe_load(match.group(1))
            except yaml.YAMLError as exc:
                raise HubError(400, f"Invalid YAML metadata: {exc}") from exc
            if meta is not None and not isinstance(meta, dict):
                raise HubError(400, "YAML metadata must be a mapping")
        self._send_json({"errors": [], "warnings": []})

    def _repo_api(self, repo_type: str, repo_id: str, rest: list[str], query: dict[str, list[str]]) -> None:
        store = self.server.store
        method = self.command
        with store.lock:
            repo = store.repo(repo_type, repo_id)
            write = method in ("POST", "PUT", "DELETE") and rest[:1] != ["paths-info"]
            self._check_auth(write=write, repo=repo)
            if not rest or rest[0] == "revision":
                commit = store.resolve(repo, rest[1] if len(rest) > 1 else "main")
                return self._send_json(self._info(repo, commit, query.get("blobs") == ["True"] or query.get("blobs") == ["true"]))
            action, args = rest[0], rest[1:]
            if action == "refs":
                refs = lambda d, kind: [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": o} for n, o in sorted(d.items())]
                return self._send_json({"branches": refs(repo.branches, "heads"), "tags": refs(repo.tags, "tags"),
                                        "converts": [], "pullRequests": []})
            if action == "commits":
                commit: Commit | None = store.resolve(repo, args[0] if args else "main")
                history = []
                while commit is not None:
                    history.append({"id": commit.oid, "title": commit.title, "message": commit.message,
                                    "date": commit.date, "authors": [{"user": "local-tester"}]})
                    commit = repo.commits.get(commit.parent) if commit.parent else None
                return self._send_json(history)
            if action == "tree":
                commit = store.resolve(repo, args[0])
                path = unquote("/".join(args[1:])).strip("/")
                recursive = query.get("recursive", ["False"])[0].lower() == "true"
                return self._send_json(self._tree(commit, path, recursive))
            if action == "paths-info":
                commit = store.resolve(repo, args[0])
                return self._send_json(self._paths_info(commit))
            if action == "preupload":
                return self._preupload(repo, args[0])
            if action == "commit":
                return self._commit(repo, args[0], query)
            if action == "tag":
                return self._tag(repo, args[0])
            if action == "branch":
                return self._branch(repo, unquote(args[0]))
        raise HubError(404, f"no route for {method} {'/'.join(rest)} in the local Hub test double")

    # reads
    def _info(self, repo: Repo, commit: Commit, blobs: bool) -> dict[str, Any]:
        siblings = []
        for path, blob in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling.update(size=blob.size, blobId=blob.oid)
                if blob.lfs:
                    sibling["lfs"] = {"size": blob.size, "sha256": blob.sha256, "pointerSize": len(lfs_pointer(blob.sha256, blob.size))}
            siblings.append(sibling)
        card = commit.files.get("README.md")
        card_data = None
        if card is not None:
            match = re.match(r"^---\s*\n(.*?)\n---\s*\n", self.server.store.read_object(card.sha256).decode(), re.DOTALL)
            card_data = yaml.safe_load(match.group(1)) if match else None
        return {"_id": repo.id, "id": repo.id, "author": repo.id.split("/")[0], "sha": commit.oid,
                "lastModified": commit.date, "createdAt": repo.created, "private": repo.private, "gated": False,
                "disabled": False, "downloads": 0, "likes": 0, "tags": [], "cardData": card_data,
                "siblings": siblings, "usedStorage": sum(b.size for b in commit.files.values())}

    def _tree(self, commit: Commit, path: str, recursive: bool) -> list[dict[str, Any]]:
        files, folders = commit.files, _folders(commit.files)
        if path and path not in folders:
            raise HubError(404, f"{path} does not exist on {commit.oid}", "EntryNotFound",
                           headers={"X-Repo-Commit": commit.oid})
        base = f"{path}/" if path else ""
        entries = []
        for folder in sorted(folders):
            if folder.startswith(base) and (recursive or "/" not in folder[len(base):]):
                entries.append(_folder_entry(folder, files))
        for file, blob in sorted(files.items()):
            if file.startswith(base) and (recursive or "/" not in file[len(base):]):
                entries.append(_tree_entry(file, blob))
        return entries

    def _paths_info(self, commit: Commit) -> list[dict[str, Any]]:
        body = self._body()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            paths = json.loads(body).get("paths", [])
        else:
            paths = parse_qs(body.decode()).get("paths", [])
        folders = _folders(commit.files)
        out = []
        for path in paths if isinstance(paths, list) else [paths]:
            path = path.strip("/")
            if path in commit.files:
                out.append(_tree_entry(path, commit.files[path]))
            elif path in folders:
                out.append(_folder_entry(path, commit.files))
        return out

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        store = self.server.store
        with store.lock:
            repo = store.repo(repo_type, repo_id)
            self._check_auth(write=False, repo=repo)
            commit = store.resolve(repo, revision)
            blob = commit.files.get(path)
        if blob is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", headers={"X-Repo-Commit": commit.oid})
        data = store.read_object(blob.sha256)
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{blob.sha256 if blob.lfs else blob.oid}"',
                   "Accept-Ranges": "bytes"}
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if match and self.command == "GET":
            start = int(match.group(1) or 0)
            end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
            if start >= len(data):
                raise HubError(416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{len(data)}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return self._send(206, data[start:end + 1], "application/octet-stream", headers)
        self._send(200, data, "application/octet-stream", headers)

    # writes
    def _preupload(self, repo: Repo, revision: str) -> None:
        store = self.server.store
        commit = store.resolve(repo, revision)
        files = []
        for item in self._json_body().get("files", []):
            mode = store.upload_mode(repo, commit, item["path"], item["size"], base64.b64decode(item.get("sample", "")))
            existing = commit.files.get(item["path"])
            oid = None if existing is None else (existing.sha256 if existing.lfs else existing.oid)
            files.append({"path": item["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        self._send_json({"files": files, "commitOid": commit.oid})

    def _lfs_batch(self, repo_type: str, repo_id: str) -> None:
        store = self.server.store
        with store.lock:
            self._check_auth(write=True, repo=store.repo(repo_type, repo_id))
        body = self._json_body()
        objects = []
        for obj in body.get("objects", []):
            answer: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if not store.has_object(obj["oid"], obj["size"]):
                answer["actions"] = {
                    "upload": {"href": f"{self.server.endpoint}/lfs/objects/{obj['oid']}", "header": {}},
                    "verify": {"href": f"{self.server.endpoint}/lfs/verify", "header": {}},
                }
            objects.append(answer)
        self._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(), "application/vnd.git-lfs+json")

    def _lfs_put(self, oid: str) -> None:
        data = self._body()
        if hashlib.sha256(data).hexdigest() != oid:
            raise HubError(400, f"uploaded content does not hash to {oid}")
        self.server.store.put_object(data)
        self._send(200, b"")

    def _commit(self, repo: Repo, revision: str, query: dict[str, list[str]]) -> None:
        store = self.server.store
        branch = unquote(revision).removeprefix("refs/heads/")
        if query.get("create_pr"):
            raise HubError(400, "pull requests are not supported by the local Hub test double")
        if branch not in repo.branches:
            raise HubError(404, f"Invalid rev id: {branch} is not a branch", "RevisionNotFound")
        head = repo.commits[repo.branches[branch]]
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), {})
        if header.get("parentCommit") and header["parentCommit"] != head.oid:
            raise HubError(412, f"parent commit {header['parentCommit']} is not the head of {branch} ({head.oid})")
        files = dict(head.files)
        for line in lines:
            key, value = line["key"], line["value"]
            path = value.get("path", "") if isinstance(value, dict) else ""
            if key == "file":
                files[path] = store.blob(base64.b64decode(value["content"]), lfs=False)
            elif key == "lfsFile":
                size = value.get("size")
                if not store.has_object(value["oid"], size):
                    raise HubError(422, f"LFS object {value['oid']} for {path} was never uploaded")
                size = store.object_path(value["oid"]).stat().st_size
                files[path] = Blob(value["oid"], size, True, git_blob_oid(lfs_pointer(value["oid"], size)))
            elif key == "deletedFile":
                if files.pop(path, None) is None:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            elif key == "deletedFolder":
                inside = [p for p in files if p.startswith(path.rstrip("/") + "/")]
                if not inside:
                    raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                for p in inside:
                    del files[p]
            elif key != "header":
                raise HubError(400, f"unknown commit operation {key!r}")
        commit = store.add_commit(repo, branch, head.oid, header.get("summary", ""), header.get("description", ""), files)
        url = f"{self.server.endpoint}/{PREFIXES[repo.type]}{repo.id}/commit/{commit.oid}"
        self._send_json({"success": True, "commitOid": commit.oid, "commitUrl": url, "pullRequestUrl": None})

    def _tag(self, repo: Repo, revision: str) -> None:
        store = self.server.store
        if self.command == "DELETE":
            tag = unquote(revision)
            if tag not in repo.tags:
                raise HubError(404, f"Tag {tag} not found", "RevisionNotFound")
            return store.set_ref(repo, "tag", tag, None) or self._send(200, b"")
        body = self._json_body()
        if body.get("tag") in repo.tags:
            raise HubError(409, f"Tag {body.get('tag')} already exists")
        store.set_ref(repo, "tag", body["tag"], store.resolve(repo, revision).oid)
        self._send_json({"success": True})

    def _branch(self, repo: Repo, branch: str) -> None:
        store = self.server.store
        if self.command == "DELETE":
            if branch not in repo.branches or branch == "main":
                raise HubError(404 if branch not in repo.branches else 403, f"cannot delete branch {branch}")
            return store.set_ref(repo, "branch", branch, None) or self._send(200, b"")
        if branch in repo.branches:
            raise HubError(409, f"Branch {branch} already exists")
        start = self._json_body().get("startingPoint") or "main"
        store.set_ref(repo, "branch", branch, store.resolve(repo, start).oid)
        self._send_json({"success": True})


class HubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, store: HubStore, token: str, read_token: str | None = None):
        super().__init__(("127.0.0.1", 0), HubHandler)
        self.store, self.token, self.read_token = store, token, read_token
        self.endpoint = f"http://127.0.0.1:{self.server_address[1]}"
        self.requests: list[str] = []


class LocalHub:
    """The test double running in a background thread on 127.0.0.1 and a free port.

    Example:
        >>> with LocalHub(Path("/tmp/hub"), token="hf_test") as hub:  # doctest: +SKIP
        ...     HfApi(endpoint=hub.endpoint, token=hub.token).create_repo("org/x", repo_type="dataset")
    """

    def __init__(self, root: Path, token: str, read_token: str | None = None):
        self.store = HubStore(root)
        self.token, self.read_token = token, read_token  # read_token: a second token with the read role
        self._server = HubHTTPServer(self.store, token, read_token)
        self.endpoint = self._server.endpoint
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-hub", daemon=True)

    @property
    def requests(self) -> list[str]:
        """``METHOD path`` of every request served, in order (tests count commits with it)."""
        return self._server.requests

    def __enter__(self) -> "LocalHub":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def hub_environment(hub: LocalHub, home: Path, monkeypatch: Any) -> Iterator[None]:
    """Point ``huggingface_hub`` and ``datasets`` at ``hub`` with a fake token and caches under ``home``.

    Both libraries read their settings into module constants at import time, so
    the constants are patched along with the environment (for subprocesses).
    """
    import datasets.config
    import huggingface_hub.constants as constants

    hf_home = home / "hf_home"
    env = {"HF_ENDPOINT": hub.endpoint, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": hub.token, "HF_HOME": str(hf_home),
           "HF_HUB_CACHE": str(hf_home / "hub"), "HF_DATASETS_CACHE": str(hf_home / "datasets"),
           "HF_XET_CACHE": str(hf_home / "xet"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    patches = {
        constants: {"ENDPOINT": hub.endpoint, "HF_HUB_DISABLE_XET": True, "HF_HUB_OFFLINE": False,
                    "HUGGINGFACE_CO_URL_TEMPLATE": hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}",
                    "HF_URL_HOSTS": constants.HF_URL_HOSTS | {"127.0.0.1"},
                    "HF_HOME": str(hf_home), "HF_HUB_CACHE": str(hf_home / "hub"),
                    "HUGGINGFACE_HUB_CACHE": str(hf_home / "hub"), "HF_XET_CACHE": str(hf_home / "xet"),
                    "HF_ASSETS_CACHE": str(hf_home / "assets"), "HF_TOKEN_PATH": str(hf_home / "token"),
                    "HF_STORED_TOKENS_PATH": str(hf_home / "stored_tokens")},
        datasets.config: {"HF_ENDPOINT": hub.endpoint,
                          "HUB_DATASETS_URL": hub.endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}",
                          "HF_HUB_OFFLINE": False, "HF_DATASETS_OFFLINE": False, "HF_CACHE_HOME": str(hf_home),
                          "HF_DATASETS_CACHE": hf_home / "datasets", "HF_MODULES_CACHE": hf_home / "modules",
                          "DOWNLOADED_DATASETS_PATH": hf_home / "datasets" / "downloads",
                          "EXTRACTED_DATASETS_PATH": hf_home / "datasets" / "downloads" / "extracted"},
    }
    for module, values in patches.items():
        for name, value in values.items():
            if hasattr(module, name):
                monkeypatch.setattr(module, name, value)
    os.makedirs(hf_home, exist_ok=True)
    yield
