"""Time of one `stylize` request of the web app, as a click in the page sees it (HTTP API, queue, PNG).

Starts the app in this process on random-initialised models (the numbers do not depend on the weights)
or on given checkpoints, and times through gradio_client: the first request (new face and style: both
encoders run), a repeat with another add_weight_index (cached codes: the generator only) and a photo
that needs FFHQ alignment (the first one also loads dlib's landmark model).

    python benchmarks/demo_latency.py --size 256 --precision fp32
    python benchmarks/demo_latency.py --size 1024 --precision bf16 --repeats 3
    python benchmarks/demo_latency.py --quick     # 64 px, 1 repeat: that it runs
"""

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import harness  # noqa: E402


def random_pipeline(size, precision):
    import torch

    from blendgan import BlendGAN, Generator, PSPEncoder

    torch.manual_seed(0)
    generator = Generator(size)
    psp = PSPEncoder(generator.n_latent)
    return BlendGAN(generator, psp, device="cpu", precision=precision)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--repeats", type=int, default=3, help="cached requests timed (median reported)")
    parser.add_argument("--ckpt", default=None, help="blendgan.pt (default: random weights)")
    parser.add_argument("--psp_encoder_ckpt", default=None)
    parser.add_argument("--quick", action="store_true", help="a 64 px generator, 1 repeat: that it runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.repeats = 64, 1
    print(harness.machine_line(), flush=True)

    import torch
    from gradio_client import Client, handle_file

    from blendgan.allocator import reuse_freed_memory
    from blendgan.demo.app import build_app, launch
    from blendgan.demo.service import DemoService

    reuse_freed_memory()  # as `blendgan demo` does on CPU
    if args.ckpt:
        service = DemoService.load(args.ckpt, args.psp_encoder_ckpt, device="cpu", precision=args.precision)
    else:
        service = DemoService(random_pipeline(args.size, args.precision))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = launch(build_app(service), port=port, block=False, quiet=True)
    client = Client(app.local_url, verbose=False, analytics_enabled=False, download_files=tempfile.mkdtemp())
    imgs = ROOT / "test_imgs"

    def request(face, style, index):
        start = time.perf_counter()
        client.predict(handle_file(str(face)), handle_file(str(style)), index, api_name="/stylize")
        return time.perf_counter() - start

    first = request(imgs / "face_imgs/astronaut.jpg", imgs / "style_imgs/cartoon_astronaut.jpg", 6)
    cached = statistics.median(
        request(imgs / "face_imgs/astronaut.jpg", imgs / "style_imgs/cartoon_astronaut.jpg", i % service.n_latent)
        for i in range(args.repeats)
    )
    photo = request(imgs / "photos/grace_hopper.jpg", imgs / "style_imgs/cartoon_astronaut.jpg", 6)
    photo_again = request(imgs / "photos/grace_hopper.jpg", imgs / "style_imgs/pencil_grace_hopper.jpg", 6)
    app.close()
    header = ["size", "precision", "first s", "cached s", "photo (aligned) s", "photo again s", "threads"]
    print(harness.markdown_row(header))
    print(harness.markdown_row(["---"] * len(header)))
    cells = [service.size, args.precision, f"{first:.2f}", f"{cached:.2f}", f"{photo:.2f}", f"{photo_again:.2f}"]
    print(harness.markdown_row([*cells, torch.get_num_threads()]))
    print(harness.finish_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
