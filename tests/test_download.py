"""blendgan.weights.download against a local HTTP server (no real network): files arrive checked and recorded in
the manifest; web pages, truncated files and the wrong kind of file are refused; a dropped connection is
resumed with a Range request, within one call and across calls."""

import hashlib
import http.server
import threading
import time
from pathlib import Path

import pytest
import torch

from blendgan import weights as ck
from blendgan.cli import download as download_cli
from blendgan.cli import run_module
from blendgan.errors import CheckpointError
from blendgan.weights import download as dl
from blendgan.weights import home

import helpers

QUOTA_PAGE = (
    b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>"
    b"Too many users have viewed or downloaded this file recently.</body></html>"
)


class WeightServer:
    """http://127.0.0.1:<port>/<mode>/<filename> serving registered files (bytes, or a Path read from disk).

    Modes: `ok` (honours Range), `html` (a quota page), `drop` (the first request for a file sends half the
    bytes of the announced length and closes the connection; later ones are served normally), `norange`
    (ignores Range), `missing` (404).
    """

    def __init__(self):
        self.files = {}
        self.requests = []  # (path, Range header or None)
        self.dropped = set()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                _, mode, name = self.path.split("/", 2)
                if mode == "html":
                    return self._send(200, QUOTA_PAGE, "text/html; charset=utf-8")
                if mode == "missing" or name not in server.files:
                    return self._send(404, b"not found", "text/plain")
                data = server.files[name]
                size = data.stat().st_size if isinstance(data, Path) else len(data)
                start = 0
                rng = self.headers.get("Range")
                if rng and mode != "norange" and self.headers.get("If-Range", '"v1"') == '"v1"':
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
                else:
                    self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size - start))
                self.send_header("ETag", '"v1"')
                self.end_headers()
                end = size
                if mode == "drop" and name not in server.dropped and start == 0:
                    server.dropped.add(name)
                    end = size // 2
                self._body(data, start, end)
                # returning closes the connection (HTTP/1.0); a short body is an interrupted download

            def _body(self, data, start, end):
                if isinstance(data, Path):  # big files are streamed from disk
                    with data.open("rb") as f:
                        f.seek(start)
                        while start < end:
                            chunk = f.read(min(1 << 20, end - start))
                            self.wfile.write(chunk)
                            start += len(chunk)
                else:
                    self.wfile.write(memoryview(data)[start:end])

            def _send(self, code, body, ctype):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # shutdown() waits for the loop's next poll: a short interval ends each test at once, not 0.5 s later
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def url(self, mode):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{mode}/{{filename}}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def retry_waits(monkeypatch):
    """The seconds gdown waits before its retries (a random 0-2, 0-4, 0-8 s), recorded instead of slept: the
    tests keep every retry and lose only the idle time."""
    waits = []
    monkeypatch.setattr(time, "sleep", waits.append)
    return waits


@pytest.fixture(autouse=True)
def online(monkeypatch):
    """Downloads are what this module tests: conftest's BLENDGAN_OFFLINE=1 becomes 0 (the tests that need it
    removed or set still delete or set it), and the Hub's own offline switch is cleared."""
    monkeypatch.setenv(dl.OFFLINE_ENV, "0")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.fixture
def server():
    s = WeightServer()
    yield s
    s.close()


@pytest.fixture
def small_files(server, tmp_path_factory):
    """The three published names served as small files with the right keys and shapes (size 64)."""
    src = tmp_path_factory.mktemp("served")
    for w in ck.OFFICIAL_WEIGHTS.values():
        path = helpers.save(helpers.shape_only_checkpoint(w.kind, 64), src / w.filename)
        server.files[w.filename] = path.read_bytes()
    return server.files


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def fetch(server, mode, tmp_path, names=None, **kwargs):
    kwargs.setdefault("retries", 0)
    return dl.download_weights(names, tmp_path, url_template=server.url(mode), quiet=True, log=lambda m: None, **kwargs)


def test_download_checks_and_records_every_file(server, small_files, tmp_path):
    paths = fetch(server, "ok", tmp_path)
    assert set(paths) == set(ck.OFFICIAL_WEIGHTS)
    manifest = ck.read_manifest(tmp_path)
    for name, w in ck.OFFICIAL_WEIGHTS.items():
        path = paths[name]
        assert path == tmp_path / w.filename and path.read_bytes() == small_files[w.filename]
        entry = manifest[w.filename]
        assert entry["sha256"] == sha256(small_files[w.filename]) and entry["kind"] == w.kind
        assert entry["size"] == len(small_files[w.filename])
        assert ck.verify_manifest(path) is True
    assert not list(tmp_path.glob("*.download*"))

    n = len(server.requests)
    fetch(server, "ok", tmp_path)  # all present and intact: nothing is fetched
    assert len(server.requests) == n

    damaged = tmp_path / "psp_encoder.pt"
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    assert "does not match manifest.json" in str(pytest.raises(CheckpointError, ck.read_checkpoint, damaged).value)
    fetch(server, "ok", tmp_path)  # the damaged file is fetched again
    assert [p for p, _ in server.requests[n:]] == ["/ok/psp_encoder.pt"]
    assert damaged.read_bytes() == small_files["psp_encoder.pt"]

    fetch(server, "ok", tmp_path, ["blendgan"], force=True)
    assert server.requests[-1][0] == "/ok/blendgan.pt"


def test_present_file_without_manifest_entry_is_checked_and_recorded(server, small_files, tmp_path):
    (tmp_path / "blendgan.pt").write_bytes(small_files["blendgan.pt"])
    fetch(server, "ok", tmp_path, ["blendgan"])
    assert server.requests == []
    assert ck.read_manifest(tmp_path)["blendgan.pt"]["sha256"] == sha256(small_files["blendgan.pt"])


def test_html_page_is_refused(server, small_files, tmp_path):
    with pytest.raises(CheckpointError) as err:
        fetch(server, "html", tmp_path, ["blendgan"])
    message = str(err.value)
    assert message.startswith("the server sent Google Drive's 'download quota exceeded' page instead of blendgan.pt")
    assert "https://drive.google.com/file/d/1eF04jKMLAb9DvzI72m8Akn5ykWf3EafE" in message
    assert not (tmp_path / "blendgan.pt").exists() and not list(tmp_path.glob("blendgan.pt.download*"))
    assert ck.read_manifest(tmp_path) == {}


def test_truncated_or_wrong_file_is_refused(server, small_files, tmp_path):
    server.files["psp_encoder.pt"] = small_files["psp_encoder.pt"][:5000]
    with pytest.raises(CheckpointError) as err:
        fetch(server, "ok", tmp_path, ["psp_encoder"])
    assert str(err.value).startswith("the downloaded psp_encoder.pt is not usable (it is truncated or corrupt")
    assert "blendgan download --force --only psp_encoder" in str(err.value)

    server.files["psp_encoder.pt"] = small_files["blendgan.pt"]
    with pytest.raises(CheckpointError) as err:
        fetch(server, "ok", tmp_path, ["psp_encoder"])
    assert "has no 'encoder.*' pSp weights" in str(err.value)
    assert not (tmp_path / "psp_encoder.pt").exists() and ck.read_manifest(tmp_path) == {}


def test_http_error_is_reported(server, tmp_path):
    with pytest.raises(CheckpointError) as err:
        fetch(server, "missing", tmp_path, ["style_encoder"])
    assert str(err.value).startswith("could not download style_encoder.pt from http://127.0.0.1:")
    assert "404" in str(err.value)


@pytest.fixture(scope="module")
def recipe_blendgan(tmp_path_factory):
    """A loadable 64 px blendgan.pt of ~5 MB, served from disk: the right keys and shapes (stride-0 zeros)
    plus random padding, so that several whole 512 kB chunks arrive before the drop. Resuming, hashing and
    recording do not depend on the size; the 1.3 GB recipe file only made each transfer and hash longer."""
    padding = torch.randn(1_200_000, generator=torch.Generator().manual_seed(0))
    ckpt = {**helpers.shape_only_checkpoint("generator", 64), "padding": padding}
    return helpers.save(ckpt, tmp_path_factory.mktemp("served") / "blendgan.pt")


def range_offsets(server, path):
    return [int(r.split("=")[1].rstrip("-")) for p, r in server.requests if p == path and r]


def test_dropped_connection_resumes_across_calls(server, recipe_blendgan, tmp_path):
    server.files["blendgan.pt"] = recipe_blendgan
    size = recipe_blendgan.stat().st_size
    with pytest.raises(CheckpointError) as err:
        fetch(server, "drop", tmp_path, ["blendgan"], retries=0)
    assert str(err.value).startswith("download of blendgan.pt was interrupted")
    assert "run `blendgan download --only blendgan` again to resume from" in str(err.value)
    parts = list(tmp_path.glob("blendgan.pt.download*.part"))
    assert len(parts) == 1 and not (tmp_path / "blendgan.pt").exists()
    kept = parts[0].stat().st_size
    assert 0 < kept <= size // 2  # whole chunks received before the drop

    path = fetch(server, "drop", tmp_path, ["blendgan"], retries=0)["blendgan"]
    assert range_offsets(server, "/drop/blendgan.pt") == [kept]  # only the rest was fetched
    digest = ck.sha256_file(path)
    assert digest == ck.sha256_file(recipe_blendgan) == ck.read_manifest(tmp_path)["blendgan.pt"]["sha256"]
    assert not list(tmp_path.glob("*.part"))
    _, info = ck.load_generator(path)
    assert info["size"] == 64 and info["path"] == path


def test_dropped_connection_resumes_within_one_call(server, tmp_path):
    # ~2.4 MB so that whole 512 kB chunks arrive before the drop; extra entries are ignored by the loaders
    ckpt = {**helpers.shape_only_checkpoint("psp_encoder"), "padding": torch.randn(600_000)}
    data = helpers.save(ckpt, tmp_path / "src.pt").read_bytes()
    server.files["psp_encoder.pt"] = data
    path = fetch(server, "drop", tmp_path / "out", ["psp_encoder"], retries=2)["psp_encoder"]
    offsets = range_offsets(server, "/drop/psp_encoder.pt")
    assert len(offsets) == 1 and 0 < offsets[0] <= len(data) // 2
    assert path.read_bytes() == data


def test_download_command_and_defaults(server, small_files, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(home.HOME_ENV, str(tmp_path / "home"))
    monkeypatch.setenv(dl.URL_ENV, server.url("ok"))
    assert home.weights_dir() == tmp_path / "home"
    assert home.default_weight_path("psp_encoder") == tmp_path / "home" / "psp_encoder.pt"
    assert dl.weight_url("blendgan") == server.url("ok").format(filename="blendgan.pt")
    assert run_module(download_cli, ["--only", "psp_encoder", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "home" / "psp_encoder.pt")
    assert (tmp_path / "home" / "psp_encoder.pt").read_bytes() == small_files["psp_encoder.pt"]

    monkeypatch.delenv(home.HOME_ENV)
    monkeypatch.delenv(dl.URL_ENV)
    assert home.weights_dir() == Path("pretrained_models")
    assert dl.weight_url("style_encoder") == "https://drive.google.com/uc?id=1EaM0ZYsAMdPkbRz0smLNIlJ1rxVAhbEz"
    assert run_module(download_cli, ["--dir", str(tmp_path / "d"), "--url", server.url("html"), "--quiet"]) == 2
    assert "download quota exceeded" in capsys.readouterr().err


def test_server_ignoring_range_means_starting_over(server, tmp_path):
    ckpt = {**helpers.shape_only_checkpoint("psp_encoder"), "padding": torch.randn(600_000)}
    server.files["psp_encoder.pt"] = helpers.save(ckpt, tmp_path / "src.pt").read_bytes()
    with pytest.raises(CheckpointError):
        fetch(server, "drop", tmp_path / "out", ["psp_encoder"])  # leaves partial data
    with pytest.raises(CheckpointError) as err:
        fetch(server, "norange", tmp_path / "out", ["psp_encoder"])
    assert "could not resume" in str(err.value) and "--force --only psp_encoder" in str(err.value)
    path = fetch(server, "norange", tmp_path / "out", ["psp_encoder"], force=True)["psp_encoder"]
    assert path.read_bytes() == server.files["psp_encoder.pt"]


# --------------------------------------------------------------------------- first use: commands fetch weights
FACE = Path(__file__).resolve().parents[1] / "test_imgs" / "face_imgs"
STYLE = Path(__file__).resolve().parents[1] / "test_imgs" / "style_imgs"


def transfer(tmp_path, *extra):
    from blendgan.cli import main

    face, style = sorted(FACE.iterdir())[0], sorted(STYLE.iterdir())[0]
    return main(
        [
            "transfer",
            "--input_img_path",
            str(face),
            "--style_img_path",
            str(style),
            "--device",
            "cpu",
            "--outdir",
            str(tmp_path / "out"),
            *extra,
        ]
    )


def test_first_use_downloads_the_default_weights_and_goes_on(server, small_files, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(dl.OFFLINE_ENV)
    monkeypatch.setenv(home.HOME_ENV, str(tmp_path / "home"))
    monkeypatch.setenv(dl.URL_ENV, server.url("ok"))
    assert transfer(tmp_path) == 0
    err = capsys.readouterr().err
    assert "blendgan.pt not found: downloading it once" in err and "psp_encoder.pt not found" in err
    for name in ("blendgan.pt", "psp_encoder.pt"):
        assert (tmp_path / "home" / name).read_bytes() == small_files[name]
    manifest = ck.read_manifest(tmp_path / "home")
    assert set(manifest) == {"blendgan.pt", "psp_encoder.pt"}  # the optional style encoder is not fetched
    assert manifest["blendgan.pt"]["sha256"] == sha256(small_files["blendgan.pt"])
    assert len(list((tmp_path / "out").glob("*.jpg"))) == 1
    fetched = len(server.requests)
    assert dl.fetch_if_missing("blendgan") == tmp_path / "home" / "blendgan.pt"
    assert len(server.requests) == fetched  # later runs find them


@pytest.mark.parametrize("how", ["--no_download", "BLENDGAN_OFFLINE"])
def test_no_download_names_the_missing_file(server, small_files, tmp_path, monkeypatch, capsys, how):
    monkeypatch.delenv(dl.OFFLINE_ENV)
    monkeypatch.setenv(home.HOME_ENV, str(tmp_path / "home"))
    monkeypatch.setenv(dl.URL_ENV, server.url("ok"))
    if how == "BLENDGAN_OFFLINE":
        monkeypatch.setenv(dl.OFFLINE_ENV, "1")
    assert transfer(tmp_path, *([how] if how.startswith("--") else [])) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "blendgan.pt not found; run `blendgan download --only blendgan`" in lines[0]
    assert server.requests == [] and not (tmp_path / "home" / "blendgan.pt").exists()


def test_first_use_without_network_is_one_line(tmp_path, monkeypatch, capsys, retry_waits):
    import socket

    with socket.socket() as s:  # a port nobody listens on: the connection is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.delenv(dl.OFFLINE_ENV)
    monkeypatch.setenv(home.HOME_ENV, str(tmp_path / "home"))
    monkeypatch.setenv(dl.URL_ENV, f"http://127.0.0.1:{port}/{{filename}}")
    assert transfer(tmp_path, "--batch_size", "1") == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "could not download blendgan.pt" in err[0] and "check the connection" in err[0]
    assert not (tmp_path / "home" / "blendgan.pt").exists()
    assert len(retry_waits) == 3  # it gave up after its retries, not at the first refusal
