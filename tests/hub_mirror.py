"""A fake Hugging Face Hub on loopback that serves local directories as model repos to `huggingface_hub`.

Only what `snapshot_download` and `hf_hub_download` use is served: the model info and tree APIs and
`/resolve/` (HEAD and GET, with Range). Files are answered directly, never redirected, and no Xet headers
are sent, so the client always downloads over plain HTTP.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

# Files stored in git LFS on the real hub: their ETag and blob name are the sha256, not the git oid.
_LFS_SUFFIXES = (".safetensors", ".gguf", ".bin", ".pt", ".pth", ".onnx", ".h5", ".msgpack", ".ckpt")
_REPO = r"(?P<repo>[^/]+(?:/[^/]+)?)"
_INFO = re.compile(rf"/api/models/{_REPO}(?:/revision/(?P<rev>[^/]+))?")
_TREE = re.compile(rf"/api/models/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?")
_RESOLVE = re.compile(rf"/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_LAST_MODIFIED = "2024-01-01T00:00:00.000Z"


@dataclass(frozen=True)
class _File:
    path: str  # relative, "/"-separated
    local: Path
    size: int
    oid: str  # git blob sha1 (of the LFS pointer for LFS files)
    sha256: str | None  # set for LFS files
    pointer_size: int = 0

    @property
    def etag(self) -> str:
        return self.sha256 or self.oid


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _index(root: Path) -> dict[str, _File]:
    """Every file under `root` (recursively), keyed by its repo path."""
    files = {}
    for local in sorted(p for p in root.rglob("*") if p.is_file()):
        data = local.read_bytes()
        path = local.relative_to(root).as_posix()
        if local.suffix in _LFS_SUFFIXES:
            sha256 = hashlib.sha256(data).hexdigest()
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {len(data)}\n"
            oid = _git_oid(pointer.encode())
            files[path] = _File(path, local, len(data), oid, sha256, len(pointer))
        else:
            files[path] = _File(path, local, len(data), _git_oid(data), None)
    return files


class _NotFound(Exception):
    def __init__(self, code: str, message: str, commit: str | None = None) -> None:
        super().__init__(message)
        self.code, self.commit = code, commit


class HubMirror:
    """Serves `repos` (repo id -> local directory, read when built) as hub model repos at `url`."""

    def __init__(self, repos: dict[str, Path]) -> None:
        self._repos = {repo_id: _index(Path(root)) for repo_id, root in repos.items()}
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.mirror = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="hub-mirror", daemon=True)

    def commit(self, repo_id: str) -> str:
        """The fixed commit sha that revision "main" resolves to."""
        return hashlib.sha1(repo_id.encode()).hexdigest()

    def __enter__(self) -> HubMirror:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _record(self, line: str) -> None:
        with self._lock:
            self.requests.append(line)

    def _files(self, repo_id: str, revision: str) -> tuple[str, dict[str, _File]]:
        """(commit, files) of `repo_id` at `revision`, or _NotFound."""
        if repo_id not in self._repos:
            raise _NotFound("RepoNotFound", f"Repository {repo_id} not found")
        commit = self.commit(repo_id)
        if revision not in ("main", commit):
            raise _NotFound("RevisionNotFound", f"Invalid rev id: {revision}")
        return commit, self._repos[repo_id]

    def _info(self, repo_id: str, revision: str) -> dict:
        commit, files = self._files(repo_id, revision)
        return {
            "_id": commit[:24],
            "id": repo_id,
            "modelId": repo_id,
            "sha": commit,
            "lastModified": _LAST_MODIFIED,
            "private": False,
            "gated": False,
            "disabled": False,
            "tags": [],
            "siblings": [{"rfilename": path} for path in files],
        }

    def _tree(self, repo_id: str, revision: str, folder: str, recursive: bool) -> list[dict]:
        """The entries under `folder`, shaped like the hub's /api/models/{repo}/tree/{rev} listing."""
        commit, files = self._files(repo_id, revision)
        prefix = folder.strip("/") + "/" if folder.strip("/") else ""
        folders: set[str] = set()
        entries: list[dict] = []
        for file in files.values():
            if not file.path.startswith(prefix):
                continue
            parts = file.path[len(prefix) :].split("/")
            if not recursive and len(parts) > 1:
                folders.add(prefix + parts[0])
                continue
            folders.update(prefix + "/".join(parts[:i]) for i in range(1, len(parts)))
            entry: dict = {"type": "file", "oid": file.oid, "size": file.size, "path": file.path}
            if file.sha256 is not None:
                entry["lfs"] = {"oid": file.sha256, "size": file.size, "pointerSize": file.pointer_size}
            entries.append(entry)
        if prefix and not entries and not folders:
            raise _NotFound("EntryNotFound", f"{folder} does not exist on {revision}", commit)
        dirs = [
            {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}
            for path in sorted(folders)
        ]
        return dirs + entries

    def _resolve(self, repo_id: str, revision: str, path: str) -> tuple[str, _File]:
        commit, files = self._files(repo_id, revision)
        if path not in files:
            raise _NotFound("EntryNotFound", f"{path} does not exist on {revision}", commit)
        return commit, files[path]


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _dispatch(self) -> None:
        mirror: HubMirror = self.server.mirror  # type: ignore[attr-defined]
        mirror._record(f"{self.command} {self.path}")
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        try:
            if match := _TREE.fullmatch(url.path):
                recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
                folder = unquote(match["path"] or "")
                self._json(200, mirror._tree(match["repo"], unquote(match["rev"]), folder, recursive))
            elif match := _INFO.fullmatch(url.path):
                self._json(200, mirror._info(match["repo"], unquote(match["rev"] or "main")))
            elif match := _RESOLVE.fullmatch(url.path):
                commit, file = mirror._resolve(match["repo"], unquote(match["rev"]), unquote(match["path"]))
                self._file(commit, file)
            else:
                self._json(404, {"error": "Not Found"})
        except _NotFound as error:
            headers = {"X-Error-Code": error.code, "X-Error-Message": str(error)}
            if error.commit is not None:
                headers["X-Repo-Commit"] = error.commit
            self._json(404, {"error": str(error)}, headers)

    def _json(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self._send(status, {"Content-Type": "application/json", **(headers or {})}, body)

    def _file(self, commit: str, file: _File) -> None:
        headers = {
            "Content-Type": "application/octet-stream",
            "ETag": f'"{file.etag}"',
            "X-Repo-Commit": commit,
            "Accept-Ranges": "bytes",
        }
        if file.sha256 is not None:
            headers |= {"X-Linked-Etag": f'"{file.sha256}"', "X-Linked-Size": str(file.size)}
        status, start, end = 200, 0, file.size
        if match := _RANGE.fullmatch(self.headers.get("Range", "").strip()):
            first, last = match.groups()
            start = int(first) if first else max(file.size - int(last or 0), 0)
            end = min(int(last) + 1, file.size) if first and last else file.size
            if start >= end:
                self._send(416, {**headers, "Content-Range": f"bytes */{file.size}"})
                return
            status, headers["Content-Range"] = 206, f"bytes {start}-{end - 1}/{file.size}"
        self._send(status, {**headers, "Content-Length": str(end - start)})
        if self.command == "GET":
            with file.local.open("rb") as stream:
                stream.seek(start)
                self.wfile.write(stream.read(end - start))

    def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        """Status line and headers (Content-Length defaults to the body's); the body unless HEAD."""
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
