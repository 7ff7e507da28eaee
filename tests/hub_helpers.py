"""A local stand-in for the Hugging Face Hub, for huggingface_hub's `hf_hub_download` and `HfApi.upload_folder`.

Downloads: huggingface_hub resolves a file with `HEAD {endpoint}/{repo_id}/resolve/{revision}/{filename}` and
needs the commit in `X-Repo-Commit`, an `ETag` (the cache's blob name) and the size (`Content-Length`); then it
GETs the same URL (with a Range header when resuming). Missing repositories, revisions and files are 404s with
the `X-Error-Code` the client maps to its errors.

Uploads, through the plain commit API (the client's Xet storage path must be turned off:
`huggingface_hub.constants.HF_HUB_DISABLE_XET`): `POST /api/repos/create`, `POST /api/validate-yaml` (the model
card), `POST /api/models/{repo_id}/preupload/{revision}` (every file answered "regular": sent inline) and
`POST /api/models/{repo_id}/commit/{revision}` (NDJSON: a header, then the files base64-encoded).

Only 127.0.0.1 is used.
"""

import base64
import hashlib
import http.server
import json
import threading
from pathlib import Path
from urllib.parse import unquote


class HubServer:
    """http://127.0.0.1:<port> serving {repo_id: {filename: bytes}} at two revisions: `main` and its commit."""

    def __init__(self):
        self.repos = {}
        self.requests = []  # (method, path)
        self.created = {}  # repo_id -> the create_repo payload
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

            def do_POST(self):
                server.requests.append(("POST", unquote(self.path)))
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                parts = unquote(self.path.split("?")[0]).lstrip("/").split("/")
                if parts[:3] == ["api", "repos", "create"]:
                    payload = json.loads(body)
                    repo_id = f"{payload['organization']}/{payload['name']}"
                    if repo_id in server.repos:
                        error = {"error": "You already created this model repo", "url": f"{server.endpoint}/{repo_id}"}
                        return self._json(409, error)
                    server.created[repo_id] = payload
                    server.repos[repo_id] = {}
                    return self._json(200, {"url": f"{server.endpoint}/{repo_id}", "name": repo_id})
                if parts[:2] == ["api", "validate-yaml"]:
                    return self._json(200, {"errors": [], "warnings": []})
                if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] in ("preupload", "commit"):
                    repo_id = "/".join(parts[2:4])
                    if repo_id not in server.repos:
                        return self._error(404, "RepoNotFound")
                    if parts[4] == "preupload":
                        files = json.loads(body)["files"]
                        modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
                        return self._json(200, {"files": modes})
                    for line in body.decode().splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            server.add(repo_id, item["value"]["path"], base64.b64decode(item["value"]["content"]))
                    commit = server.commit(repo_id)
                    return self._json(
                        200, {"commitUrl": f"{server.endpoint}/{repo_id}/commit/{commit}", "commitOid": commit}
                    )
                return self._error(404, "RepoNotFound")

            def _json(self, code, data):
                body = json.dumps(data).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _answer(self, body):
                server.requests.append((self.command, unquote(self.path)))
                parts = unquote(self.path.split("?")[0]).lstrip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return self._error(404, "RepoNotFound")
                repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                if repo_id not in server.repos:
                    return self._error(404, "RepoNotFound")
                commit = server.commit(repo_id)
                if revision not in ("main", commit):
                    return self._error(404, "RevisionNotFound")
                data = server.repos[repo_id].get(filename)
                if data is None:
                    return self._error(404, "EntryNotFound", commit)
                start = 0
                rng = self.headers.get("Range")
                if rng and body:
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("X-Repo-Commit", commit)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if body:
                    self.wfile.write(data[start:])

            def _error(self, code, error_code, commit=None):
                body = f'{{"error": "{error_code}"}}'.encode()
                self.send_response(code)
                self.send_header("X-Error-Code", error_code)
                if commit:
                    self.send_header("X-Repo-Commit", commit)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def commit(self, repo_id):
        """The repository's commit: the sha1 of its sorted file names and contents (changes with them)."""
        h = hashlib.sha1(repo_id.encode())
        for name, data in sorted(self.repos.get(repo_id, {}).items()):
            h.update(name.encode() + hashlib.sha256(data).digest())
        return h.hexdigest()

    def add(self, repo_id, filename, data):
        self.repos.setdefault(repo_id, {})[filename] = bytes(data)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def make_fitted_files(ckpt, out) -> dict:
    """A style code and an adapter (random, not fitted) for the generator in `ckpt`, carrying its base
    fingerprint as `blendgan fit-style` writes them: {'style_code': path, 'adapter': path}."""
    import torch

    from blendgan import weights as ck
    from blendgan.fitting import adapter as adapter_mod
    from blendgan.fitting.style_code import save_style_code

    out = Path(out)
    generator, _ = ck.load_generator(ckpt)
    meta = {"base_fingerprint": adapter_mod.generator_fingerprint(generator), "base_checkpoint": Path(ckpt).name}
    g = torch.Generator().manual_seed(0)
    save_style_code(out / "style_code.safetensors", torch.randn(1, 512, generator=g), None, meta)
    layers = adapter_mod.adaptable_layers(generator)[:2]
    deltas = adapter_mod.delta_tensors(adapter_mod.attach(generator, layers, 2))
    tensors = {k: torch.randn(v.shape, generator=g) * 0.05 for k, v in deltas.items()}
    adapter_mod.save_adapter(out / "adapter.safetensors", tensors, {**meta, "layers": layers, "rank": "2"})
    return {"style_code": out / "style_code.safetensors", "adapter": out / "adapter.safetensors"}
