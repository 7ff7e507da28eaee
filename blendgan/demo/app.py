"""The Gradio page over a `DemoService`: layout and event wiring only (the work is in service.py).

Three tabs: "Stylize" (face + style -> result, random face / random style, the add_weight_index slider and
the stylization controls of `ControlPanel`; an uploaded photo also comes back whole, every face stylized and
pasted back), "Your video" (a clip with every face stylized, played in the page) and "Interpolation video"
(a face morphing between two styles, H.264 mp4 played in the page). Every model event runs in one queue
("model", one job at a time), so concurrent users wait their turn. The HTTP API has three documented
endpoints: ``stylize(face image, style image, add_weight_index, strength=1, preserve_color=False,
style_2=None, mix=0, layer_weights='') -> image`` (the aligned face, stylized; the optional controls'
defaults give the original image), ``stylize_photo(photo, style image, add_weight_index, ...the same
controls) -> image`` (the whole photo) and ``stylize_video(clip, style image, add_weight_index) -> video``.
Both image endpoints end with an optional ``refine=0``: steps of refining each face's codes (docs/refine.md).
With ``blendgan demo --directions FILE`` every tab gets a slider per face edit (docs/editing.md); the
``stylize_video`` endpoint then takes their amounts as optional inputs after ``add_weight_index``.
"""

from __future__ import annotations

import contextlib
import html
import logging
import os
import secrets

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # a local app: no telemetry, no version check

import gradio as gr  # noqa: E402

from ..errors import BlendGANError  # noqa: E402
from .service import (  # noqa: E402
    DEFAULT_ADD_WEIGHT_INDEX,
    MAX_REFINE_STEPS,
    VIDEO_ADD_WEIGHT_INDEX,
    bundled_style_images,
)

log = logging.getLogger(__name__)

MODEL_QUEUE = "model"
ADD_WEIGHT_INFO = (
    "How many of the generator's first layers keep the face's own code: higher keeps more of the "
    "face (pose, shape, identity), lower takes more of the style."
)
# system fonts only: the page needs nothing from the internet
THEME = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def upload_image(**kwargs):
    """An image input handing over the uploaded file untouched (a path; no mode conversion), so 16-bit, CMYK
    and EXIF-rotated files are decoded by the service the way the commands decode them. Files Pillow cannot
    open are passed on as well (instead of failing with Pillow's exception): the service reads them with
    OpenCV or says what is wrong."""
    component = gr.Image(type="filepath", image_mode=None, **kwargs)
    preprocess = component.preprocess

    def passing_preprocess(payload):
        try:
            return preprocess(payload)
        except Exception:  # noqa: BLE001 - not decodable by Pillow: the service gives the message
            if payload is not None and getattr(payload, "path", None):
                return str(payload.path)
            raise

    component.preprocess = passing_preprocess
    return component


@contextlib.contextmanager
def user_messages():
    """Problems the user can fix become a message box; anything else is logged and reported in one line."""
    try:
        yield
    except gr.Error:
        raise
    except BlendGANError as err:
        raise gr.Error(html.escape(str(err), quote=False), print_exception=False) from None
    except Exception as err:  # noqa: BLE001 - the page shows one line, the server log has the traceback
        log.exception("demo request failed")
        raise gr.Error(
            html.escape(f"internal error ({type(err).__name__}: {err}); details are in the server's log", quote=False),
            print_exception=False,
        ) from None


def _progress_callback(progress):
    return lambda fraction, desc: progress(fraction, desc=desc)


def _status_markdown(service):
    if service.ready:
        return f"Model: {service.describe()}."
    reason = html.escape(service.load_error, quote=False)
    return f"**The model is not loaded**, so nothing can be generated yet: {reason}. Then restart `blendgan demo`."


def edit_sliders(service, prefix=""):
    """One slider per direction of `blendgan demo --directions` (issue 34), in std units, built in the current
    Gradio context (ids `<prefix>edit_<name>`); [] without directions. A tab passes their values as the last
    inputs of its events (`edit_amounts`), so a result depends on that tab's sliders only, never on another
    tab's or another visitor's."""
    if service.directions is None:
        return []
    with gr.Accordion("Edit the face", open=True, elem_id=f"{prefix}face_edits"):
        return [
            gr.Slider(-3, 3, value=0.0, step=0.25, label=name, elem_id=f"{prefix}edit_{name}")
            for name in service.directions.names()
        ]


def edit_amounts(service, values):
    """{"edit_amounts": {direction name: amount}} of a tab's edit slider values (in `edit_sliders`' order), the
    keyword of the service's calls; {} without sliders (the calls of an app without directions stay as they were)."""
    if service.directions is None or not values:
        return {}
    return {"edit_amounts": {name: float(v or 0.0) for name, v in zip(service.directions.names(), values)}}


class ControlPanel:
    """The stylization controls of the Stylize tab (issue 23), built in the current Gradio context: a strength
    slider, a colour toggle, a second style with a mix slider and, under "Advanced", per-layer style weights.
    `inputs` are the components in the order `service.stylize` / `values` take them."""

    def __init__(self, n_latent):
        self.strength = gr.Slider(
            0,
            1,
            value=1.0,
            step=0.05,
            label="Strength",
            elem_id="strength",
            info="0 gives the face's reconstruction, 1 the full style.",
        )
        self.preserve_color = gr.Checkbox(
            value=False,
            label="Keep the face's colours",
            elem_id="preserve_color",
            info="The fine (colour) layers keep the face's code.",
        )
        with gr.Accordion("Mix a second style", open=False, elem_id="mix_fold"):
            self.style_2 = upload_image(
                label="Second style image (optional)", elem_id="style_input_2", sources=["upload", "clipboard"]
            )
            self.mix = gr.Slider(
                0,
                1,
                value=0.0,
                step=0.05,
                label="Second style's share",
                elem_id="style_mix",
                info="The two styles mix in the style mapping's W space.",
            )
        with gr.Accordion("Advanced", open=False, elem_id="advanced"):
            self.layer_weights = gr.Textbox(
                value="",
                label="Per-layer style weights",
                elem_id="layer_weights",
                info=f"Empty: the add_weight_index slider decides. Else {n_latent} values in [0, 1] (layer 0 is "
                "the coarsest), or a preset: all, structure, texture.",
            )
            self.refine = gr.Number(
                value=0,
                minimum=0,
                maximum=MAX_REFINE_STEPS,
                precision=0,
                step=10,
                elem_id="refine",
                label="Refine the likeness (steps)",
                info="0: off. Optimises the uploaded face's codes so the result keeps more of its likeness; each "
                "step takes about as long as a few results. Cached per face.",
            )

    @property
    def inputs(self):
        return [self.strength, self.preserve_color, self.style_2, self.mix, self.layer_weights, self.refine]


def build_app(service):
    """The page (a `gr.Blocks`) over `service`; start it with `launch`."""
    styles = [str(p) for p in (*service.fitted_styles, *bundled_style_images())]  # fitted styles first
    n_latent = service.n_latent

    def face_source(face_path, face_seed, refine=0, progress=None):
        """(face codes, RGB face as encoded, note) from an upload or, without one, the random face's seed.
        `refine` steps refine an upload's codes (a random face is the generator's own: nothing to refine)."""
        if face_path:
            face_bgr, note = service.prepare_face(face_path)
            return service.face_codes(face_bgr, refine, progress), face_bgr[:, :, ::-1].copy(), note
        if face_seed is not None:
            codes, rgb = service.random_face(face_seed)
            return codes, rgb, None
        raise gr.Error("Upload a face photo (or click “Random face”) first.", print_exception=False)

    def style_source(style_path, style_seed, what="style image"):
        if style_path:
            return service.style_code(service.prepare_style(style_path))
        if style_seed is not None:
            return service.random_style(style_seed)
        raise gr.Error(f"Upload a {what} (or pick one of the bundled styles) first.", print_exception=False)

    def on_stylize(
        face_path,
        style_path,
        index,
        face_seed,
        style_seed,
        strength=1.0,
        preserve_color=False,
        style_2=None,
        mix=0.0,
        layer_weights="",
        refine=0,
        progress=gr.Progress(),
        *edit_values,
    ):
        with user_messages():
            index = service.check_add_weight_index(index)
            controls, mix = service.check_controls(strength, preserve_color, layer_weights, mix)
            refine = service.check_refine(refine)
            edits = edit_amounts(service, edit_values)
            progress(0.0, desc="face")
            codes, face_rgb, _ = face_source(face_path, face_seed, refine, _progress_callback(progress))
            progress(0.4, desc="style")
            z = style_source(style_path, style_seed)
            z_second = service.style_code(service.prepare_style(style_2)) if style_2 else None
            progress(0.6, desc="generating")
            result = service.stylize_codes(codes, z, index, z_second=z_second, mix=mix, **edits, **controls)
            whole = None
            if face_path and service.is_whole_photo(face_path):
                progress(0.8, desc="the whole photo")
                whole, note = service.stylize_photo(
                    face_path, z, index, z_second=z_second, mix=mix, refine=refine, **edits, **controls
                )
                gr.Info(note)
        return face_rgb, result, whole  # (the alignment note was shown when the face was uploaded)

    def on_stylize_if_ready(face_path, style_path, index, face_seed, style_seed, *rest, progress=gr.Progress()):
        """After a random face/style: generate when both inputs are there, else leave the page as it is.
        `rest`: the control values, then the edit sliders' values."""
        if not service.ready or not (face_path or face_seed is not None) or not (style_path or style_seed is not None):
            return gr.skip(), gr.skip(), gr.skip()
        controls, edits = rest[: len(controls_inputs)], rest[len(controls_inputs) :]
        return on_stylize(face_path, style_path, index, face_seed, style_seed, *controls, progress, *edits)

    def on_face_change(face_path, face_seed):
        """Show the aligned crop of a new upload (and forget the random face); report "no face found" now."""
        if not face_path:
            return gr.skip(), face_seed
        if not service.ready:
            return gr.skip(), None
        with user_messages():
            face_bgr, note = service.prepare_face(face_path)
        if note:
            gr.Info(note)
        return face_bgr[:, :, ::-1].copy(), None

    def on_style_change(style_path, style_seed):
        if not style_path:
            return style_seed, gr.skip()
        return None, ""

    def on_random_face():
        seed = secrets.randbelow(2**31)
        with user_messages():
            _, rgb = service.random_face(seed)
        return None, seed, rgb

    def on_random_style():
        seed = secrets.randbelow(2**31)
        return None, seed, f"Style: a random style code (seed {seed})."

    def on_api_stylize(
        face_path,
        style_path,
        index,
        strength=1.0,
        preserve_color=False,
        style_2=None,
        mix=0.0,
        layer_weights="",
        refine=0,
        progress=gr.Progress(),
    ):
        with user_messages():
            _, result, _ = service.stylize(
                face_path,
                style_path,
                index,
                _progress_callback(progress),
                strength=strength,
                preserve_color=preserve_color,
                style_path_2=style_2,
                mix=mix,
                layer_weights=layer_weights,
                refine=refine,
            )
        return result

    def on_api_stylize_photo(
        photo_path,
        style_path,
        index,
        strength=1.0,
        preserve_color=False,
        style_2=None,
        mix=0.0,
        layer_weights="",
        refine=0,
        progress=gr.Progress(),
    ):
        with user_messages():
            controls, mix = service.check_controls(strength, preserve_color, layer_weights, mix)
            z_second = service.style_code(service.prepare_style(style_2)) if style_2 else None
            result, _ = service.stylize_photo(
                photo_path,
                style_path,
                index,
                _progress_callback(progress),
                z_second=z_second,
                mix=mix,
                refine=service.check_refine(refine),
                **controls,
            )
        return result

    def on_stylize_video(video_path, style_path, index, progress=gr.Progress(), *edit_values):
        with user_messages():
            edits = edit_amounts(service, edit_values)
            return service.stylize_video(video_path, style_path, index, _progress_callback(progress), **edits)

    def on_video(face_path, style_a, style_b, index, progress=gr.Progress(), *edit_values):
        with user_messages():
            index = service.check_add_weight_index(index)
            edits = edit_amounts(service, edit_values)
            progress(0.0, desc="encoding")
            codes, _, _ = face_source(face_path, None)
            z_from = style_source(style_a, None, "first style image")
            z_to = style_source(style_b, None, "second style image")
            return service.interpolation_video(codes, z_from, z_to, index, _progress_callback(progress), **edits)

    model = dict(concurrency_id=MODEL_QUEUE, concurrency_limit=1)
    ui = dict(api_visibility="private")
    with gr.Blocks(title="BlendGAN", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown("## BlendGAN: a face in the style of any artwork")
        gr.Markdown(_status_markdown(service), elem_id="status")
        face_seed = gr.State(None)
        style_seed = gr.State(None)
        with gr.Tab("Stylize"):
            with gr.Row(equal_height=False):
                with gr.Column():
                    face_in = upload_image(
                        label="Face photo (aligned automatically)",
                        elem_id="face_input",
                        sources=["upload", "webcam", "clipboard"],
                    )
                    random_face_btn = gr.Button("Random face", elem_id="random_face")
                    face_used = gr.Image(
                        label="Face as the model sees it",
                        interactive=False,
                        elem_id="face_used",
                        format="png",
                        buttons=["fullscreen"],
                        height=256,
                    )
                with gr.Column():
                    style_in = upload_image(label="Style image", elem_id="style_input", sources=["upload", "clipboard"])
                    if styles:
                        gr.Examples([[p] for p in styles], inputs=[style_in], label="Bundled styles")
                    random_style_btn = gr.Button("Random style", elem_id="random_style")
                    style_note = gr.Markdown("", elem_id="style_note")
                with gr.Column():
                    result = gr.Image(
                        label="Result",
                        interactive=False,
                        format="png",
                        elem_id="result",
                        buttons=["download", "fullscreen"],
                        height=256,
                    )
                    index = gr.Slider(
                        0,
                        n_latent,
                        value=min(DEFAULT_ADD_WEIGHT_INDEX, n_latent),
                        step=1,
                        label="add_weight_index",
                        info=ADD_WEIGHT_INFO,
                        elem_id="add_weight_index",
                    )
                    controls = ControlPanel(n_latent)
                    photo_edits = edit_sliders(service)
                    run_btn = gr.Button("Stylize", variant="primary", elem_id="stylize")
                    api_btn = gr.Button(visible=False)  # carries the documented `stylize` endpoint
            whole_photo = gr.Image(
                label="Whole photo: every face stylized and pasted back",
                interactive=False,
                format="png",
                elem_id="whole_photo",
                buttons=["download", "fullscreen"],
            )
            photo_api_btn = gr.Button(visible=False)  # carries the documented `stylize_photo` endpoint
        with gr.Tab("Your video"):
            with gr.Row(equal_height=False):
                with gr.Column():
                    clip_in = gr.Video(
                        label=f"Clip (up to {service.max_video_seconds:g} s)", sources=["upload"], elem_id="clip_input"
                    )
                with gr.Column():
                    clip_style = upload_image(
                        label="Style image", elem_id="clip_style", sources=["upload", "clipboard"]
                    )
                    if styles:
                        gr.Examples([[p] for p in styles], inputs=[clip_style], label="Bundled styles")
                with gr.Column():
                    clip_out = gr.Video(
                        label="Stylized clip (H.264, with its sound)",
                        autoplay=True,
                        elem_id="clip_output",
                        interactive=False,
                    )
                    clip_index = gr.Slider(
                        0,
                        n_latent,
                        value=min(DEFAULT_ADD_WEIGHT_INDEX, n_latent),
                        step=1,
                        label="add_weight_index",
                        info=ADD_WEIGHT_INFO,
                    )
                    clip_edits = edit_sliders(service, "clip_")
                    clip_btn = gr.Button("Stylize video", variant="primary", elem_id="stylize_video")
        with gr.Tab("Interpolation video"):
            with gr.Row(equal_height=False):
                with gr.Column():
                    video_face = upload_image(
                        label="Face photo", elem_id="video_face", sources=["upload", "webcam", "clipboard"]
                    )
                with gr.Column():
                    style_a = upload_image(label="From style", elem_id="video_style_a", sources=["upload", "clipboard"])
                    style_b = upload_image(label="To style", elem_id="video_style_b", sources=["upload", "clipboard"])
                    if len(styles) >= 2:
                        gr.Examples(
                            [[a, b] for a, b in zip(styles, styles[1:] + styles[:1])],
                            inputs=[style_a, style_b],
                            label="Bundled style pairs",
                        )
                with gr.Column():
                    video = gr.Video(
                        label="Interpolation (H.264)", autoplay=True, loop=True, elem_id="video", interactive=False
                    )
                    video_index = gr.Slider(
                        0,
                        n_latent,
                        value=min(VIDEO_ADD_WEIGHT_INDEX, n_latent),
                        step=1,
                        label="add_weight_index",
                        info=ADD_WEIGHT_INFO,
                    )
                    video_edits = edit_sliders(service, "video_")
                    video_btn = gr.Button("Make video", variant="primary", elem_id="make_video")

        controls_inputs = controls.inputs
        stylize_inputs = [face_in, style_in, index, face_seed, style_seed, *controls_inputs, *photo_edits]
        stylize_outputs = [face_used, result, whole_photo]
        run_btn.click(on_stylize, stylize_inputs, stylize_outputs, **model, **ui)
        face_in.change(on_face_change, [face_in, face_seed], [face_used, face_seed], **model, **ui)
        style_in.change(on_style_change, [style_in, style_seed], [style_seed, style_note], **ui)
        random_face_btn.click(on_random_face, None, [face_in, face_seed, face_used], **model, **ui).then(
            on_stylize_if_ready, stylize_inputs, stylize_outputs, **model, **ui
        )
        random_style_btn.click(on_random_style, None, [style_in, style_seed, style_note], **ui).then(
            on_stylize_if_ready, stylize_inputs, stylize_outputs, **model, **ui
        )
        api_btn.click(
            on_api_stylize,
            [face_in, style_in, index, *controls.inputs],
            result,
            api_name="stylize",
            api_description="Stylize a face photo (aligned automatically) with a style image; "
            f"add_weight_index 0 ... {n_latent}; optional: strength (0 ... 1), "
            "preserve_color, a second style with its share (mix), per-layer style "
            "weights (text: values or a preset), refine (steps of refining the "
            "face's codes, 0: off).",
            **model,
        )
        photo_api_btn.click(
            on_api_stylize_photo,
            [face_in, style_in, index, *controls.inputs],
            whole_photo,
            api_name="stylize_photo",
            api_description="Stylize every face of a photo with a style image and paste them "
            f"back: the whole photo at its own size; add_weight_index 0 ... "
            f"{n_latent}; the optional controls of stylize.",
            **model,
        )
        clip_btn.click(
            on_stylize_video,
            [clip_in, clip_style, clip_index, *clip_edits],
            clip_out,
            api_name="stylize_video",
            api_description="Stylize every face of a short clip and paste them back: an H.264 mp4 "
            "with the clip's sound.",
            **model,
        )
        video_btn.click(on_video, [video_face, style_a, style_b, video_index, *video_edits], video, **model, **ui)
    return app


def launch(app, host="127.0.0.1", port=7860, block=True, quiet=False):
    """Start the page on host:port with the model queue; `block=False` returns once the server is up."""
    app.queue(default_concurrency_limit=1)
    styles = bundled_style_images()
    app.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=not block,
        share=False,
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        enable_monitoring=False,
        theme=THEME,
        quiet=quiet,
        run_history=False,
        allowed_paths=[str(styles[0].parent)] if styles else None,
        footer_links=["api", "settings"],
    )
    return app
