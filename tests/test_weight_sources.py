"""The sources of the released weights (blendgan.weights.sources, .download, .hub) against local servers only:
an HTTP mirror (test_download.py's WeightServer) and a stand-in for the Hub's file endpoint (conftest's `hub`,
HF_ENDPOINT pointed at it). Sources are tried in order, the first usable file wins, each failure is one line
naming its source, a file whose sha256 is not the published one is refused, and offline nothing is contacted."""

import hashlib
import json
import time

import pytest
import torch
from test_download import WeightServer

from blendgan import weights as ck
from blendgan.cli import download as download_cli
from blendgan.cli import run_module
from blendgan.errors import CheckpointError, UsageError
from blendgan.weights import download as dl
from blendgan.weights.sources import parse_source, weight_sources

import helpers


@pytest.fixture(autouse=True)
def online(monkeypatch):
    monkeypatch.delenv(dl.OFFLINE_ENV, raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv(dl.URL_ENV, raising=False)


@pytest.fixture(autouse=True)
def retry_waits(monkeypatch):
    """Retry waits (gdown's, huggingface_hub's) are recorded, not slept."""
    waits = []
    monkeypatch.setattr(time, "sleep", waits.append)
    return waits


@pytest.fixture
def mirror():
    s = WeightServer()
    yield s
    s.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """{filename: bytes} of the three published names as small loadable files, and an `other` psp_encoder.pt:
    loadable too, but not the published bytes (the file a wrong hash is)."""
    src = tmp_path_factory.mktemp("served")
    out = {}
    for w in ck.OFFICIAL_WEIGHTS.values():
        out[w.filename] = helpers.save(helpers.shape_only_checkpoint(w.kind, 64), src / w.filename).read_bytes()
    other = {**helpers.shape_only_checkpoint("psp_encoder", 64), "extra": torch.ones(3)}
    out["other"] = helpers.save(other, src / "other.pt").read_bytes()
    return out


def manifest_of(files, *names):
    return json.dumps({n: {"sha256": hashlib.sha256(files[n]).hexdigest(), "size": len(files[n])} for n in names})


def base(mirror, mode):
    return mirror.url(mode).rsplit("/", 1)[0]  # the mirror's base URL (no template)


def fetch(tmp_path, sources, names=("psp_encoder",), **kwargs):
    lines = []
    kwargs.setdefault("retries", 0)
    paths = dl.download_weights(list(names), tmp_path, sources=sources, quiet=True, log=lines.append, **kwargs)
    return paths, lines


def test_sources_are_parsed_and_listed_in_order(monkeypatch, capsys):
    assert parse_source("drive").kind == "drive" and str(parse_source("drive")) == "Google Drive"
    assert parse_source("https://example.org/w/").template == "https://example.org/w/{filename}"
    assert parse_source("http://h/{filename}?k=1").template == "http://h/{filename}?k=1"
    hub_source = parse_source("hf://owner/weights@v1.0")
    assert (hub_source.kind, hub_source.hub.repo_id, hub_source.hub.revision) == ("hub", "owner/weights", "v1.0")
    assert hub_source.url(ck.OFFICIAL_WEIGHTS["blendgan"]) == "hf://owner/weights/blendgan.pt@v1.0"
    for bad in ("ftp://x/y", "hf://owner", "hf://o/r/extra", "hf://o/r@a@b", "weights"):
        with pytest.raises(UsageError):
            parse_source(bad)
    assert [s.kind for s in weight_sources()] == ["drive"]  # the default: Google Drive alone
    monkeypatch.setenv(dl.URL_ENV, "https://a.example/w hf://o/r")
    assert [str(s) for s in weight_sources()] == ["https://a.example/w/{filename}", "hf://o/r"]
    assert [str(s) for s in weight_sources(["drive", "hf://x/y"])] == ["Google Drive", "hf://x/y"]  # flags win

    assert run_module(download_cli, ["--sources"]) == 0
    assert capsys.readouterr().out.splitlines() == ["1. https://a.example/w/{filename}", "2. hf://o/r"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert run_module(download_cli, ["--sources", "--source", "drive", "--source", "hf://o/r"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "1. Google Drive  (skipped: HF_HUB_OFFLINE=1)",
        "2. hf://o/r  (offline: its Hugging Face cache only)",
    ]


def test_first_good_source_wins_and_later_ones_are_not_contacted(mirror, hub, files, tmp_path):
    mirror.files["psp_encoder.pt"] = files["psp_encoder.pt"]
    hub.add("owner/weights", "psp_encoder.pt", files["psp_encoder.pt"])
    paths, lines = fetch(tmp_path, [base(mirror, "ok"), "hf://owner/weights"])
    assert paths["psp_encoder"].read_bytes() == files["psp_encoder.pt"]
    assert hub.requests == []
    assert [p for p, _ in mirror.requests] == ["/ok/psp_encoder.pt", "/ok/manifest.json"]
    assert ck.read_manifest(tmp_path)["psp_encoder.pt"]["url"] == mirror.url("ok").format(filename="psp_encoder.pt")


def test_failures_fall_back_in_order_with_one_line_each(mirror, hub, files, tmp_path):
    """A 404 mirror, then a mirror whose file is not the one its manifest.json publishes, then the Hub."""
    mirror.files["psp_encoder.pt"] = files["other"]
    mirror.files["manifest.json"] = manifest_of(files, "psp_encoder.pt").encode()
    hub.add("owner/weights", "psp_encoder.pt", files["psp_encoder.pt"])
    hub.add("owner/weights", "manifest.json", manifest_of(files, "psp_encoder.pt").encode())
    sources = [base(mirror, "missing"), base(mirror, "ok"), "hf://owner/weights@main"]
    paths, lines = fetch(tmp_path, sources)
    assert paths["psp_encoder"].read_bytes() == files["psp_encoder.pt"]
    failures = [line for line in lines if not line.startswith(("downloading", str(tmp_path)))]
    assert len(failures) == 2
    assert (
        failures[0].startswith(f"psp_encoder.pt from {mirror.url('missing')}: could not download")
        and "404" in failures[0]
    )
    assert failures[1].startswith(f"psp_encoder.pt from {mirror.url('ok')}: refused: its sha256")
    assert "manifest.json of" in failures[1]
    entry = ck.read_manifest(tmp_path)["psp_encoder.pt"]
    assert entry["url"] == "hf://owner/weights/psp_encoder.pt@main"
    assert entry["sha256"] == hashlib.sha256(files["psp_encoder.pt"]).hexdigest()
    assert ("HEAD", "/owner/weights/resolve/main/psp_encoder.pt") in hub.requests
    assert not list(tmp_path.glob("*.download*"))


def test_hub_file_with_the_wrong_hash_is_refused(hub, files, tmp_path):
    hub.add("owner/weights", "psp_encoder.pt", files["other"])
    hub.add("owner/weights", "manifest.json", manifest_of(files, "psp_encoder.pt").encode())
    with pytest.raises(CheckpointError) as err:
        fetch(tmp_path, ["hf://owner/weights"])
    assert str(err.value).startswith("refused: its sha256") and "hf://owner/weights" in str(err.value)
    assert not (tmp_path / "psp_encoder.pt").exists() and ck.read_manifest(tmp_path) == {}


def test_local_record_is_the_hash_a_redownload_must_match(mirror, hub, files, tmp_path):
    """A damaged file is fetched again; a source offering other bytes than the recorded ones is refused even
    when it publishes no manifest, and the next source gives the recorded file."""
    mirror.files["psp_encoder.pt"] = files["psp_encoder.pt"]
    path = fetch(tmp_path, [base(mirror, "ok")])[0]["psp_encoder"]
    path.write_bytes(files["psp_encoder.pt"][:-10] + b"0123456789")  # damaged
    hub.add("owner/weights", "psp_encoder.pt", files["other"])
    mirror.files["psp_encoder.pt"] = files["psp_encoder.pt"]
    _, lines = fetch(tmp_path, ["hf://owner/weights", base(mirror, "ok")])
    assert any(line.startswith("psp_encoder.pt from hf://owner/weights: refused") for line in lines)
    assert path.read_bytes() == files["psp_encoder.pt"]


def test_every_source_failing_names_them_all(mirror, hub, tmp_path):
    with pytest.raises(CheckpointError) as err:
        fetch(tmp_path, [base(mirror, "missing"), "hf://nobody/nothing"])
    message = str(err.value)
    assert message.startswith("no source gave a usable psp_encoder.pt (tried ")
    assert mirror.url("missing") in message and "hf://nobody/nothing" in message
    assert "\n" not in message


def test_hub_errors_are_one_line_with_the_reason(hub, files, tmp_path):
    hub.add("owner/weights", "blendgan.pt", files["blendgan.pt"])
    cases = {
        "hf://nobody/nothing": "no such repository",
        "hf://owner/weights@v9": "no such revision",
        "hf://owner/weights": "no such file in the repository",  # psp_encoder.pt is not in it
    }
    for source, reason in cases.items():
        with pytest.raises(CheckpointError) as err:
            fetch(tmp_path, [source])
        assert reason in str(err.value) and "\n" not in str(err.value), source


def test_mirror_drop_is_resumed_and_checked(mirror, files, tmp_path):
    data = helpers.save(
        {**helpers.shape_only_checkpoint("psp_encoder"), "padding": torch.randn(600_000)}, tmp_path / "src.pt"
    ).read_bytes()
    mirror.files["psp_encoder.pt"] = data
    mirror.files["manifest.json"] = json.dumps(
        {"psp_encoder.pt": {"sha256": hashlib.sha256(data).hexdigest()}}
    ).encode()
    mirror.dropped.add("manifest.json")  # only the weight file's connection drops
    paths, _ = fetch(tmp_path / "out", [base(mirror, "drop"), "hf://owner/unused"], retries=1)
    ranges = [r for p, r in mirror.requests if p == "/drop/psp_encoder.pt" and r]
    assert len(ranges) == 1 and paths["psp_encoder"].read_bytes() == data
    assert ("/drop/manifest.json", None) in mirror.requests  # its published sha256 was checked

    mirror.files["psp_encoder.pt"] = data[:-5] + b"abcde"  # a resumed file that does not match is refused
    mirror.dropped.discard("psp_encoder.pt")
    with pytest.raises(CheckpointError, match="^refused: its sha256"):
        fetch(tmp_path / "again", [base(mirror, "drop")], retries=1)


def test_offline_contacts_nothing_and_takes_the_hub_cache(mirror, hub, files, tmp_path, monkeypatch):
    hub.add("owner/weights", "psp_encoder.pt", files["psp_encoder.pt"])
    sources = [base(mirror, "ok"), "hf://owner/weights"]
    monkeypatch.setenv(dl.OFFLINE_ENV, "1")
    with pytest.raises(CheckpointError) as err:
        fetch(tmp_path / "a", sources)
    assert str(err.value) == (
        f"{tmp_path / 'a' / 'psp_encoder.pt'} not found and downloads are off (BLENDGAN_OFFLINE=1); put "
        "psp_encoder.pt there (from https://drive.google.com/file/d/14nevG94hNkkwaoK5eJLF1iv78cv5O8fN or a "
        "mirror), or unset BLENDGAN_OFFLINE to download it"
    )
    assert mirror.requests == [] and hub.requests == []

    monkeypatch.delenv(dl.OFFLINE_ENV)
    fetch(tmp_path / "b", ["hf://owner/weights"])  # online once: now in the Hugging Face cache
    n = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    paths, _ = fetch(tmp_path / "c", sources)
    assert paths["psp_encoder"].read_bytes() == files["psp_encoder.pt"]
    assert mirror.requests == [] and len(hub.requests) == n


def test_download_command_takes_sources(mirror, hub, files, tmp_path, capsys):
    hub.add("owner/weights", "style_encoder.pt", files["style_encoder.pt"])
    argv = ["--dir", str(tmp_path), "--only", "style_encoder", "--quiet", "--retries", "0"]
    assert run_module(download_cli, [*argv, "--source", base(mirror, "missing"), "--source", "hf://owner/weights"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(tmp_path / "style_encoder.pt")
    assert (tmp_path / "style_encoder.pt").read_bytes() == files["style_encoder.pt"]
    failed = [line for line in err.splitlines() if line.startswith("style_encoder.pt from ")]
    assert len(failed) == 1 and failed[0].startswith(f"style_encoder.pt from {mirror.url('missing')}: ")

    # every source failing: one line per source, then the error line naming them all
    argv = ["--dir", str(tmp_path / "b"), "--only", "style_encoder", "--quiet", "--retries", "0"]
    assert run_module(download_cli, [*argv, "--source", base(mirror, "missing"), "--source", "hf://owner/nothing"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split(": ")[0] for line in lines if not line.startswith("downloading ")] == [
        f"style_encoder.pt from {mirror.url('missing')}",
        "style_encoder.pt from hf://owner/nothing",
        "error",
    ]


def test_a_hub_source_without_its_client_is_one_failure_among_others(mirror, files, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # `import huggingface_hub` fails
    mirror.files["psp_encoder.pt"] = files["psp_encoder.pt"]
    paths, lines = fetch(tmp_path, ["hf://owner/weights", base(mirror, "ok")])
    assert paths["psp_encoder"].read_bytes() == files["psp_encoder.pt"]
    assert (
        "psp_encoder.pt from hf://owner/weights: hf:// names need huggingface_hub: pip install 'blendgan[hub]'" in lines
    )
    with pytest.raises(UsageError, match=r"pip install 'blendgan\[hub\]'"):
        fetch(tmp_path / "b", ["hf://owner/weights"])
