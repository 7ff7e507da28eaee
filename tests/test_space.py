"""space/app.py, the Hugging Face Space of the web app, started as a Space starts it (its own process, settings
in the environment): it fetches the weights from a Hub repository (the local stand-in, conftest's `hub`) and
its API answers with the pipeline's numbers."""

import os
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
import torch
from gradio_client import Client, handle_file
from test_demo import FACE, ROOT, STYLE, expected, free_port, read_rgb

from blendgan import weights as ck
from blendgan.io import images
from blendgan.pipeline import BlendGAN


@pytest.mark.slow  # whole runs of seconds each: make test (CI) runs them, test-fast does not
def test_space_fetches_the_weights_and_serves_the_api(hub, tiny_weights, tmp_path):
    for name in ("blendgan", "psp_encoder"):
        hub.add("test/blendgan-tiny", f"{name}.pt", tiny_weights[name].read_bytes())
    port = free_port()
    env = {
        **os.environ,
        "BLENDGAN_OFFLINE": "0",
        "BLENDGAN_WEIGHTS_URL": "hf://test/blendgan-tiny",
        "BLENDGAN_HOME": str(tmp_path / "weights"),
        "BLENDGAN_DEVICE": "cpu",
        "HOST": "127.0.0.1",  # a Space listens on 0.0.0.0; a test only on loopback
        "PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        # the app computes with as many threads as the reference below: a float sum's order, so its last bits,
        # depends on the thread count
        "OMP_NUM_THREADS": str(torch.get_num_threads()),
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        ),
    }
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "space" / "app.py")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = []
    threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True).start()
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 120  # a bound for a hung start, not a wait: the loop ends when the page answers
        while True:
            assert proc.poll() is None, "".join(output)
            try:
                urllib.request.urlopen(url + "config", timeout=5).read()
                break
            except OSError:
                assert time.time() < deadline, "".join(output)
                time.sleep(0.1)
        for name in ("blendgan", "psp_encoder"):  # fetched from the Hub repository at start, checked, recorded
            assert (tmp_path / "weights" / f"{name}.pt").read_bytes() == tiny_weights[name].read_bytes()
        assert set(ck.read_manifest(tmp_path / "weights")) == {"blendgan.pt", "psp_encoder.pt"}
        client = Client(url, verbose=False, analytics_enabled=False, download_files=str(tmp_path / "dl"))
        got = read_rgb(client.predict(handle_file(str(FACE)), handle_file(str(STYLE)), 6, api_name="/stylize"))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    reference = BlendGAN.from_checkpoints(tiny_weights["blendgan"], tiny_weights["psp_encoder"], device="cpu")
    want = expected(reference, images.read_image_bgr(FACE), STYLE, 6)
    assert (got == want).all()
    assert "Traceback" not in "".join(output)
