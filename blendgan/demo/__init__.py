"""The local web app (`blendgan demo`): `service` does the work over one pipeline, `app` is the Gradio page.

    from blendgan.demo.service import DemoService
    from blendgan.demo.app import build_app, launch
    launch(build_app(DemoService.load("pretrained_models/blendgan.pt", "pretrained_models/psp_encoder.pt")))

Needs the `demo` extra (pip install "blendgan[demo]"); `service` alone does not import Gradio.
"""
