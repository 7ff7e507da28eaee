"""What the web app does, without the web: one BlendGAN pipeline, face alignment and input checks.

The service knows nothing about Gradio. It takes uploaded files (paths), seeds and slider values, and
returns RGB arrays, code tensors or a video path; anything a user can get wrong raises a
``BlendGANError`` whose message is the one line the page shows. Uploads are prepared as the original
notebook GUI does: decoded like ``cv2.imdecode(..., IMREAD_COLOR)``, FFHQ-aligned unless already an
aligned square (256/512/1024 px), resized to the generator's size, then encoded.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import shutil
import tempfile
import threading
import uuid
from collections import OrderedDict
from pathlib import Path

from PIL import Image

from ..defaults import ADD_WEIGHT_INDEX as DEFAULT_ADD_WEIGHT_INDEX
from ..defaults import LATENT_AVG_SAMPLES as MEAN_LATENT_SAMPLES
from ..defaults import VIDEO_ADD_WEIGHT_INDEX, VIDEO_FPS
from ..errors import BlendGANError, InputImageError, UsageError
from ..io import images

MAX_PIXELS = 100_000_000  # larger uploads are refused before decoding (a 6000 x 4000 photo is 24 MP)
ALIGN_SIZE = 1024  # the original GUI aligns at 1024, then resizes to the generator's size
ALIGNED_CACHE_SIZE = 32  # uploads whose alignment is remembered (it takes seconds on big photos)
RANDOM_FACE_TRUNCATION = 0.7  # random faces are drawn near the average face, as generate_image_pairs does
VIDEOS_KEPT = 4  # older interpolation videos of this process are deleted
MAX_VIDEO_SECONDS = 10.0  # longest clip the video tab takes (blendgan demo --max_video_seconds)
MAX_REFINE_STEPS = 500  # most refine steps the page takes per face (each is seconds at 1024 px on a CPU)


def bundled_style_images():
    """The style images of a source checkout (test_imgs/style_imgs), or [] when installed without them."""
    folder = Path(__file__).resolve().parents[2] / "test_imgs" / "style_imgs"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if images.is_image_file(p))


def _upload_name(path):
    """The name the user gave the file (upload caches keep it as the last path component)."""
    return Path(path).name


class DemoService:
    """One loaded pipeline (or the reason it could not be loaded) and the operations of the web app.

    Model calls are serialised by a lock (the web layer also queues them); the pipeline's caches of
    face and style codes, and this service's cache of aligned uploads, are reused across requests."""

    def __init__(self, pipeline=None, load_error=None, predictor=None, max_video_seconds=MAX_VIDEO_SECONDS):
        self.max_video_seconds = float(max_video_seconds)
        self.pipeline = pipeline
        self.load_error = load_error if pipeline is None else None
        self._predictor = predictor
        self._aligner = None
        self._aligned = OrderedDict()  # content key of an upload -> (aligned BGR at ALIGN_SIZE, faces found)
        self._mean_latent = None
        self._lock = threading.RLock()
        self._video_dir = None
        self._videos = []
        self._fitted_dir = None
        self.fitted_styles = []  # pictures of the fitted style codes (`add_fitted_style`)
        self.directions = None  # face edits offered as sliders (`load_directions`), and their amounts
        self.edit_amounts = {}

    @classmethod
    def load(
        cls,
        ckpt,
        psp_encoder_ckpt,
        style_encoder_ckpt=None,
        *,
        device="auto",
        precision="fp32",
        predictor=None,
        max_video_seconds=MAX_VIDEO_SECONDS,
        adapters=(),
        style_codes=(),
        directions=(),
    ):
        """Load the weights; when they are missing or bad the service still starts and `load_error` says why.

        `adapters`: (adapter.safetensors, scale) pairs merged into the generator; `style_codes`: fitted styles
        (style_code.safetensors) offered in the page as pictures of their references (`fitted_styles`)."""
        from ..pipeline import BlendGAN, resolve_device, resolve_dtype

        resolve_dtype(precision, resolve_device(device))  # a bad flag is an error now, not a message in the page
        try:
            pipeline = BlendGAN.from_checkpoints(
                ckpt,
                psp_encoder_ckpt,
                style_encoder_ckpt or None,
                device=device,
                precision=precision,
                adapters=adapters,
            )
        except BlendGANError as err:
            return cls(None, str(err), predictor, max_video_seconds)
        service = cls(pipeline, None, predictor, max_video_seconds)
        for path in style_codes:
            service.add_fitted_style(path)
        if directions:
            service.load_directions(directions)
        return service

    def load_directions(self, paths):
        """Offer the directions of these files (`blendgan directions`, or external tensors) as face edits."""
        self.directions = self._need_pipeline().load_directions(paths)
        self.edit_amounts = {name: 0.0 for name in self.directions.names()}

    def set_edit(self, name, amount):
        """Move the face along direction `name` by `amount` standard deviations in the next results."""
        if self.directions is None or name not in self.edit_amounts:
            raise UsageError(f"no face edit named {name!r}")
        self.edit_amounts[name] = float(amount or 0.0)

    def edits(self, amounts=None):
        """The `Edits` of `amounts` ({name: std units}, e.g. a tab's slider values; None: the amounts of
        `set_edit`), or None when there is nothing to move (no directions, every amount 0)."""
        if self.directions is None:
            return None
        from ..editing.apply import Edits

        edit = Edits(self.directions, self.edit_amounts if amounts is None else amounts)
        return edit if edit.active else None

    def edited(self, face_codes, amounts=None):
        """The face codes moved by `amounts` (see `edits`; all 0, or no directions: the same codes)."""
        edit = self.edits(amounts)
        return face_codes if edit is None else edit(face_codes)

    def add_fitted_style(self, path):
        """Offer a fitted style code in the page: its reference's thumbnail, written losslessly at the
        generator's size, is remembered with the fitted code, so choosing that picture stylizes with the code."""
        bg = self._need_pipeline()
        thumb, z = bg.read_style(path)
        picture = images.resize_square(thumb, bg.size)
        if self._fitted_dir is None:
            self._fitted_dir = Path(tempfile.mkdtemp(prefix="blendgan-fitted-"))
            atexit.register(shutil.rmtree, self._fitted_dir, True)  # the page only needs them while it runs
        target = self._fitted_dir / f"{Path(path).parent.name or 'fitted'}_{Path(path).stem}.png"
        images.write_image_atomic(target, picture)
        bg.remember_style_bgr(images.resize_square(images.read_image_bgr(target), bg.size), z)
        self.fitted_styles.append(target)
        return target

    # ------------------------------------------------------------------ what the page needs to know
    @property
    def ready(self):
        return self.pipeline is not None

    @property
    def size(self):
        return self.pipeline.size if self.ready else 1024

    @property
    def n_latent(self):
        """Number of per-layer codes of the generator: add_weight_index ranges over 0 ... n_latent."""
        return self.pipeline.n_latent if self.ready else 18

    def describe(self):
        """One line: what is loaded, for the page header."""
        if not self.ready:
            return "no model loaded"
        bg = self.pipeline
        return f"{bg.size} px generator, {bg.device.type}, {bg.precision}"

    def _need_pipeline(self):
        if not self.ready:
            raise UsageError(f"the model is not loaded: {self.load_error}")
        return self.pipeline

    # ------------------------------------------------------------------ uploads
    def read_upload(self, path, what):
        """An uploaded file as H x W x 3 uint8 BGR, or InputImageError naming the upload and the fix."""
        if not path:
            raise InputImageError(f"no {what} given: upload an image")
        name = _upload_name(path)
        try:
            with Image.open(path) as im:
                width, height = im.size
        except Exception:  # noqa: BLE001 - decoding is retried below, which gives the precise reason
            width = height = 0
        if width * height > MAX_PIXELS:
            raise InputImageError(
                f"{what} {name!r} is {width}x{height} ({width * height / 1e6:.0f} MP); "
                f"the limit is {MAX_PIXELS / 1e6:.0f} MP: downscale it first"
            )
        try:
            return images.read_image_bgr(path)
        except InputImageError as err:
            reason = str(err).split(": ", 1)[-1] if str(err).startswith(str(path)) else str(err)
            raise InputImageError(f"{what} {name!r}: {reason}; upload a JPEG, PNG or WebP image") from None

    def _get_aligner(self):
        if self._aligner is None:
            from ..align import FaceAligner

            try:
                self._aligner = FaceAligner(self._predictor)
            except UsageError as err:
                raise UsageError(
                    f"this photo needs face alignment, which is not available ({err}); "
                    "or upload an already aligned square crop of 256, 512 or 1024 px"
                ) from None
        return self._aligner

    def align_face(self, image_bgr, name="the photo"):
        """(aligned BGR, number of faces found): unchanged when already an aligned square, else FFHQ-aligned
        at 1024 px (the largest face). InputImageError when there is no face."""
        from ..align import is_prealigned

        if is_prealigned(image_bgr):
            return image_bgr, None
        key = hashlib.sha1(image_bgr.tobytes() + repr(image_bgr.shape).encode()).hexdigest()
        if key not in self._aligned:
            found = self._get_aligner().align_detailed(image_bgr, ALIGN_SIZE)
            self._aligned[key] = (found.image, len(found.faces))
            while len(self._aligned) > ALIGNED_CACHE_SIZE:
                self._aligned.popitem(last=False)
        self._aligned.move_to_end(key)
        aligned, n_faces = self._aligned[key]
        if aligned is None:
            raise InputImageError(
                f"no face found in {name}: upload a photo with a clear, frontal face, "
                "or an already aligned square crop (256, 512 or 1024 px)"
            )
        return aligned, n_faces

    def prepare_face(self, path):
        """An uploaded face -> (BGR at the generator's size as encoded, note for the user or None)."""
        bg = self._need_pipeline()
        image = self.read_upload(path, "face photo")
        aligned, n_faces = self.align_face(image, repr(_upload_name(path)))
        note = None
        if n_faces is not None:
            note = "face aligned (FFHQ crop)"
            if n_faces > 1:
                note = f"{n_faces} faces found; aligned the largest"
        return images.resize_square(aligned, bg.size), note

    def prepare_style(self, path):
        """An uploaded style image -> BGR at the generator's size (as the original GUI embeds it)."""
        bg = self._need_pipeline()
        return images.resize_square(self.read_upload(path, "style image"), bg.size)

    # ------------------------------------------------------------------ codes
    def face_codes(self, face_bgr, refine=0, progress=None):
        """pSp's codes of an aligned face, or with `refine` > 0 its refined codes (cached per face);
        `progress(fraction, desc)` follows the refine's steps."""
        step = None
        if progress is not None and refine:

            def step(done, total, loss):
                progress(0.4 * done / total, f"refining the likeness: step {done}/{total}")

        with self._lock:
            return self._need_pipeline().face_codes_bgr(face_bgr, refine, progress=step)

    def check_refine(self, value):
        """The refine steps as an int within 0 ... MAX_REFINE_STEPS (None or empty: 0)."""
        if value is None or value == "":
            return 0
        try:
            steps = float(value)
        except (TypeError, ValueError):
            raise UsageError(f"refine must be a whole number of steps from 0 to {MAX_REFINE_STEPS}") from None
        if steps != int(steps) or not 0 <= steps <= MAX_REFINE_STEPS:
            raise UsageError(f"refine {value}: use a whole number of steps from 0 (off) to {MAX_REFINE_STEPS}")
        return int(steps)

    def style_code(self, style_bgr):
        with self._lock:
            return self._need_pipeline().embed_style_bgr(style_bgr)

    def random_face(self, seed):
        """(face codes, RGB picture of the face) for a latent-guided random face drawn from `seed`."""
        import torch

        with self._lock:
            bg = self._need_pipeline()
            if self._mean_latent is None:
                self._mean_latent = (
                    bg.latent_avg.reshape(1, -1).float()
                    if bg.latent_avg is not None
                    else bg.mean_latent(MEAN_LATENT_SAMPLES, torch.Generator().manual_seed(0))
                )
            z = torch.randn(1, 512, generator=torch.Generator().manual_seed(int(seed)))
            codes = bg.face_codes_from_z(z, RANDOM_FACE_TRUNCATION, self._mean_latent)
            return codes, bg.to_rgb(bg.reconstruct(codes))[0]

    @staticmethod
    def random_style(seed):
        """A random style code z_embed [1, 512] (latent-guided style, as generate_image_pairs without a style image)."""
        import torch

        return torch.randn(1, 512, generator=torch.Generator().manual_seed(int(seed)))

    def check_add_weight_index(self, value):
        """The slider value as an int within 0 ... n_latent."""
        try:
            index = int(round(float(value)))
        except (TypeError, ValueError):
            raise UsageError(f"add_weight_index must be a whole number from 0 to {self.n_latent}") from None
        if not 0 <= index <= self.n_latent:
            raise UsageError(
                f"add_weight_index {index} is outside 0 ... {self.n_latent} "
                f"(the {self.size} px generator has {self.n_latent} layers)"
            )
        return index

    def check_controls(self, strength=1.0, preserve_color=False, layer_weights="", mix=0.0):
        """The page's control values as `BlendGAN.stylize` keywords (UsageError with one line for a bad value).

        `layer_weights`: '' (none: the add_weight_index slider decides), a preset name or n_latent numbers;
        `mix`: the second style's share in [0, 1]."""
        from ..controls import Controls

        text = (layer_weights or "").strip()
        controls = Controls(strength, text or None, bool(preserve_color))
        controls.layer_vector(self.n_latent)
        mix = float(mix if mix is not None else 0.0)
        if not 0.0 <= mix <= 1.0:
            raise UsageError(f"style mix {mix:g}: must lie in [0, 1] (the second style's share)")
        return {
            "strength": controls.strength,
            "layer_weights": controls.layer_weights,
            "preserve_color": controls.preserve_color,
        }, mix

    # ------------------------------------------------------------------ results
    def stylize_codes(
        self, face_codes, z_embed, add_weight_index, *, z_second=None, mix=0.0, edit_amounts=None, **controls
    ):
        """RGB uint8 image of a face code with a style code. `controls`: strength, layer_weights,
        preserve_color; `z_second` with `mix` in [0, 1]: the second style's share of a W-space style mix;
        `edit_amounts`: face edits (see `edits`)."""
        index = self.check_add_weight_index(add_weight_index)
        with self._lock:
            bg = self._need_pipeline()
            face_codes = self.edited(face_codes, edit_amounts)
            if z_second is not None:
                out = bg.mix_styles(
                    face_codes, [z_embed, z_second], [1.0 - mix, mix], add_weight_index=index, **controls
                )
            else:
                out = bg.stylize(face_codes, z_embed, add_weight_index=index, **controls)
            return bg.to_rgb(out)[0]

    def stylize(
        self,
        face_path,
        style_path,
        add_weight_index=DEFAULT_ADD_WEIGHT_INDEX,
        progress=None,
        *,
        strength=1.0,
        preserve_color=False,
        style_path_2=None,
        mix=0.0,
        layer_weights="",
        refine=0,
    ):
        """(aligned face RGB, stylized RGB, note) for two uploaded files: the HTTP API's `stylize`.

        The optional controls (defaults: the original image): `strength`, `preserve_color`, a second style
        image `style_path_2` mixed in with share `mix`, per-layer `layer_weights` (see `check_controls`),
        `refine` steps of refining the face's codes (0: off; `check_refine`)."""
        progress = progress or (lambda fraction, desc: None)
        index = self.check_add_weight_index(add_weight_index)
        controls, mix = self.check_controls(strength, preserve_color, layer_weights, mix)
        refine = self.check_refine(refine)
        progress(0.0, "reading and aligning the face")
        face, note = self.prepare_face(face_path)
        progress(0.3, "reading the style")
        style = self.prepare_style(style_path)
        second = self.prepare_style(style_path_2) if style_path_2 else None
        progress(0.4, "encoding")
        codes, z = self.face_codes(face, refine), self.style_code(style)
        z_second = self.style_code(second) if second is not None else None
        progress(0.6, "generating")
        return (
            images.bgr_to_rgb_array(face),
            self.stylize_codes(codes, z, index, z_second=z_second, mix=mix, **controls),
            note,
        )

    def is_whole_photo(self, path):
        """True for an upload that is a photo to stylize whole (not an already aligned square crop)."""
        from ..align import is_prealigned

        return bool(path) and not is_prealigned(self.read_upload(path, "face photo"))

    def stylize_photo(
        self,
        photo_path,
        style,
        add_weight_index=DEFAULT_ADD_WEIGHT_INDEX,
        progress=None,
        *,
        z_second=None,
        mix=0.0,
        refine=0,
        edit_amounts=None,
        **controls,
    ):
        """(whole photo RGB with every face stylized and pasted back, note) for an uploaded photo and a style
        (an uploaded file's path, or a style code [1, 512]): the HTTP API's `stylize_photo`. `controls`,
        `z_second` with `mix` and `edit_amounts` as in `stylize_codes`; `refine` steps refine each face's codes. Raises
        InputImageError when no face is found; the note says how many faces were stylized or skipped."""
        import torch

        progress = progress or (lambda fraction, desc: None)
        index = self.check_add_weight_index(add_weight_index)
        progress(0.0, "reading the photo")
        bg = self._need_pipeline()
        picture = self.read_upload(photo_path, "photo")
        z = style if torch.is_tensor(style) else self.style_code(self.prepare_style(style))
        if z_second is not None:
            z, controls = [z, z_second], {**controls, "style_weights": [1.0 - mix, mix]}
        progress(0.2, "finding faces")
        with self._lock:
            result, records = bg.stylize_photo(
                images.bgr_to_rgb_array(picture),
                z,
                aligner=self._get_photo_aligner(),
                add_weight_index=index,
                refine=self.check_refine(refine),
                edit=lambda codes: self.edited(codes, edit_amounts),
                **controls,
            )
        done = [r for r in records if r.stylized is not None]
        small = [r for r in records if r.skipped and "--min_face" in r.skipped]
        if not done:
            hint = " (the faces found are too small)" if small else ""
            raise InputImageError(
                f"no face found in {_upload_name(photo_path)!r}{hint}: upload a photo with a clear face"
            )
        note = f"{len(done)} face{'s' * (len(done) != 1)} stylized"
        if small:
            note += f"; {len(small)} too small to stylize left as they are"
        return result, note

    def stylize_video(
        self, video_path, style_path, add_weight_index=DEFAULT_ADD_WEIGHT_INDEX, progress=None, edit_amounts=None
    ):
        """H.264 mp4 (path) of an uploaded clip with every face stylized and pasted back, its sound kept;
        `edit_amounts` ({name: std units}; None or all 0: no edit) move every face the same way in every frame,
        as `blendgan stylize --edit` does. Clips longer than ``max_video_seconds`` are refused with a message
        saying the limit."""
        from ..io.video import InputVideoError, probe_video
        from ..jobs.video import stylize_video

        progress = progress or (lambda fraction, desc: None)
        index = self.check_add_weight_index(add_weight_index)
        if not video_path:
            raise InputImageError("no video given: upload a short clip (mp4, mov, webm, mkv, avi or gif)")
        name = _upload_name(video_path)
        try:
            info = probe_video(video_path)
        except InputVideoError as err:
            raise InputVideoError(f"video {name!r}: {str(err).split(': ', 1)[-1]}") from None
        if info["duration"] > self.max_video_seconds + 1e-6:
            raise UsageError(
                f"video {name!r} is {info['duration']:.1f} s long; this server takes clips of up to "
                f"{self.max_video_seconds:g} s (cut it, or start the server with a larger "
                "blendgan demo --max_video_seconds)"
            )
        progress(0.05, "encoding the style")
        z = self.style_code(self.prepare_style(style_path))
        with self._lock:
            bg = self._need_pipeline()
            target = Path(self._new_video_path().replace("interpolation_", "stylized_"))

            class _Quiet:
                written = skipped = failed = 0

                def note(self, message):
                    pass

                def fail(self, path, reason):
                    raise InputVideoError(str(reason))

            progress(0.1, "finding, stylizing and pasting back the faces")
            edit = self.edits(edit_amounts or {})
            measured = stylize_video(
                bg,
                video_path,
                z,
                target,
                _Quiet(),
                aligner=self._get_photo_aligner(),
                add_weight_index=index,
                **({} if edit is None else {"edit": edit}),  # no edit: the job's own default, untouched
            )
            if not measured["frames_with_faces"]:
                with contextlib.suppress(OSError):
                    target.unlink()
                raise InputImageError(f"no face found in any frame of {name!r}: upload a clip with a clear face")
            self._videos.append(str(target))
        return str(target)

    def _get_photo_aligner(self):
        if getattr(self, "_photo_aligner", None) is None:
            from ..photo import make_aligner

            try:
                self._photo_aligner = make_aligner(predictor_path=self._predictor)
            except UsageError as err:
                raise UsageError(f"whole photos need face detection, which is not available ({err})") from None
        return self._photo_aligner

    def interpolation_video(
        self,
        face_codes,
        z_from,
        z_to,
        add_weight_index=VIDEO_ADD_WEIGHT_INDEX,
        progress=None,
        alphas=None,
        edit_amounts=None,
    ):
        """H.264 mp4 (path) of the face as the style code moves through lerp(z_from, z_to, alpha) for each
        alpha; by default gen_video's blend factors there and back (62 frames, about 2 s at 30 fps).
        `edit_amounts` ({name: std units}; None or all 0: no edit) move the face once, for every frame."""
        from ..io.video import VideoWriter
        from ..jobs.morph_video import video_alphas

        progress = progress or (lambda fraction, desc: None)
        index = self.check_add_weight_index(add_weight_index)
        if alphas is None:
            alphas = video_alphas() + video_alphas()[::-1]
        alphas = [float(a) for a in alphas]
        face_codes = self.edited(face_codes, edit_amounts or {})
        with self._lock:
            bg = self._need_pipeline()
            target = self._new_video_path()
            with VideoWriter(target, bg.size, bg.size, fps=VIDEO_FPS, codec="h264") as writer:
                for start in range(0, len(alphas), bg.batch_size):
                    chunk = alphas[start : start + bg.batch_size]
                    progress(start / len(alphas), f"frames {start + 1}-{start + len(chunk)} of {len(alphas)}")
                    out = bg.interpolate(face_codes, z_from, z_to, chunk, add_weight_index=index)
                    for frame in images.tensors_to_video_frames_rgb(out):
                        writer.write(frame)
            self._videos.append(target)
            while len(self._videos) > VIDEOS_KEPT:
                old = self._videos.pop(0)
                try:
                    os.remove(old)
                except OSError:
                    pass
        return target

    def _new_video_path(self):
        if self._video_dir is None:
            self._video_dir = Path(tempfile.mkdtemp(prefix="blendgan-demo-"))
            atexit.register(shutil.rmtree, self._video_dir, True)  # the page's copies live in Gradio's cache
        return str(self._video_dir / f"interpolation_{uuid.uuid4().hex[:12]}.mp4")
