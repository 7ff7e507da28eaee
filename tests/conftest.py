"""Shared test fixtures: the conformance fixture from ../shared (numeric conformance tests only) and session
caches of recipe weights and checkpoint files (made in the session, no ../shared needed).

Recipe generator weights are expensive (the 610304x512 style matrix takes ~10 s and 2.5 GB in
float64), so the `embedder.*` entries, identical for every generator size with the same seed, are
generated once per session and shared by every size and dtype that needs them.
"""

import copy
import os
import shutil
import tempfile

import pytest
import torch

import helpers

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test-fast` runs two pytest processes (pytest-xdist), one per core: each keeps to one thread, as two
    # processes using both cores only contend (docs/development.md, "Test suite")
    torch.set_num_threads(1)


# The test files that draw the published-width recipe, whose 610304 x 512 style matrix takes seconds of a core
# (helpers.RecipeFiles.embedder): under `pytest -n --dist loadfile` (make test-fast) they form one unit of work,
# so that one process runs them one after the other and draws the matrix once.
PUBLISHED_WIDTH_FILES = ("test_checkpoints.py", "test_conformance.py")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FilesWithSharedRecipes(LoadFileScheduling):
        def _split_scope(self, nodeid):
            scope = super()._split_scope(nodeid)
            return "published-width recipe" if scope.rsplit("/", 1)[-1] in PUBLISHED_WIDTH_FILES else scope

    return FilesWithSharedRecipes(config, log)


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """Everything the session puts in the system temp folder goes into one folder of its own, removed at the
    end: Gradio's client leaves an empty folder per download there, torchrun one per run, the web app its
    thumbnails. Set here, before collection imports gradio, which reads its temp folder at import; pytest's
    own folders (tmp_path) are placed first, in the real temp folder, so those of failed tests are kept."""
    config._tmp_path_factory.getbasetemp()
    session_tmp = tempfile.mkdtemp(prefix="blendgan-tests-")
    config._blendgan_tmp = (session_tmp, os.environ.get("TMPDIR"), os.environ.get("GRADIO_TEMP_DIR"))
    os.environ["TMPDIR"] = session_tmp
    os.environ["GRADIO_TEMP_DIR"] = os.path.join(session_tmp, "gradio")
    tempfile.tempdir = session_tmp


def pytest_unconfigure(config):
    session_tmp, tmpdir, gradio_tmp = config._blendgan_tmp
    for name, value in (("TMPDIR", tmpdir), ("GRADIO_TEMP_DIR", gradio_tmp)):
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    tempfile.tempdir = None
    shutil.rmtree(session_tmp, ignore_errors=True)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Tests never reach the network: commands do not fetch missing default weights (the first-use download
    is tested against a local server, with this variable removed)."""
    monkeypatch.setenv("BLENDGAN_OFFLINE", "1")


@pytest.fixture(autouse=True)
def freed_memory_requests(monkeypatch):
    """Commands on CPU switch glibc to keep freed memory for reuse (blendgan/allocator.py). In the
    long-lived pytest process that would pin every test's peak for the rest of the session, so commands
    run in-process only record the request here (the allocator itself is tested in a child process)."""
    import blendgan.allocator

    requests = []
    monkeypatch.setattr(blendgan.allocator, "reuse_freed_memory", lambda: requests.append(True) or True)
    return requests


@pytest.fixture(scope="session", autouse=True)
def dlib_models_loaded_once():
    """dlib's face detector (~3 s to build) and 68-point landmark model (100 MB, ~3.5 s to read) are made once
    per session: every FaceAligner built by the tests, or by the commands they run in this process, shares them.
    Both are read-only once made; a failing load (a bad .dat file) still raises and is not kept."""
    try:
        import dlib
    except ImportError:
        yield
        return
    real_predictor, real_detector = dlib.shape_predictor, dlib.get_frontal_face_detector
    made = {}

    def shape_predictor(path):
        try:
            st = os.stat(path)
        except (OSError, TypeError):
            return real_predictor(path)  # dlib's own error
        key = ("predictor", os.path.realpath(path), st.st_size, st.st_mtime_ns)
        if key not in made:
            made[key] = real_predictor(path)
        return made[key]

    def get_frontal_face_detector():
        if "detector" not in made:
            made["detector"] = real_detector()
        return made["detector"]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dlib, "shape_predictor", shape_predictor)
        mp.setattr(dlib, "get_frontal_face_detector", get_frontal_face_detector)
        yield


class RecipeWeights:
    """Recipe state dicts, cached per (kind, size, seed, dtype); embedder entries shared across sizes.

    float32 embedder entries come from the session's `helpers.RecipeFiles` (the tensors its checkpoint files
    are written from): the same values as the float64 recipe cast to float32, so the 610304 x 512 matrix is
    drawn once per session, not once for the files and again here."""

    def __init__(self, cc, files=None):
        self.cc = cc
        self.files = files
        self._cache = {}

    def _get(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def _embedder(self, seed, dtype):
        def make():
            keys = [k for k in self.cc.load_keys("generator_64") if k[0].startswith("embedder.")]
            if dtype == torch.float64:
                return self.cc.recipe_state_dict(keys, seed)
            drawn = ("embedder", seed, torch.float64) in self._cache
            if dtype == torch.float32 and self.files is not None and not drawn:
                return self.files.embedder(seed)  # test_conformance checks these equal the fixture's recipe
            return {k: v.to(dtype) for k, v in self._embedder(seed, torch.float64).items()}

        return self._get(("embedder", seed, dtype), make)

    def _rest(self, size, seed, dtype):
        """Every entry but the `embedder.*` ones, in the official order."""

        def make():
            keys = self.cc.load_keys(f"generator_{size}")
            return self.cc.recipe_state_dict([k for k in keys if not k[0].startswith("embedder.")], seed, dtype)

        return self._get(("rest", size, seed, dtype), make)

    def generator(self, size, seed=1234, dtype=torch.float64, style_encoder=True):
        """Full generator state dict (ordered as the official key list); without `style_encoder`, the
        entries of a Generator(size, with_style_encoder=False) (no `embedder.*`, nothing of it drawn)."""
        if not style_encoder:
            return self._rest(size, seed, dtype)

        def make():
            emb, rest = self._embedder(seed, dtype), self._rest(size, seed, dtype)
            return {k: (emb[k] if k in emb else rest[k]) for k, _, _ in self.cc.load_keys(f"generator_{size}")}

        return self._get(("generator", size, seed, dtype), make)

    def psp(self, size, seed=5678, dtype=torch.float64):
        """(inner GradualStyleEncoder state dict, latent_avg [n_styles, 512])."""

        def make():
            keys = self.cc.load_keys(f"psp_encoder_{size}")
            n_styles = 2 * (size.bit_length() - 1) - 2
            sd = self.cc.recipe_state_dict(keys, seed, dtype)
            return sd, self.cc.recipe_tensor("latent_avg", [n_styles, 512], seed).to(dtype)

        return self._get(("psp", size, seed, dtype), make)


@pytest.fixture(scope="session")
def cc():
    module = helpers.conformance()
    if module is None:
        pytest.skip(helpers.SKIP_REASON)
    return module


@pytest.fixture(scope="session")
def recipe(cc, tmp_path_factory):
    return RecipeWeights(cc, helpers.session_recipe_files(tmp_path_factory))


@pytest.fixture(scope="session")
def recipe_checkpoints(tmp_path_factory):
    """Factory (size, seed=1234) -> paths of recipe checkpoints in the original on-disk formats
    (written once per session by `helpers.RecipeFiles`)."""
    files = helpers.session_recipe_files(tmp_path_factory)

    def make(size, seed=helpers.GENERATOR_SEED, tiny=False):
        return {
            "blendgan": files.blendgan(size, seed, tiny),
            "psp_encoder": files.psp_encoder(size, seed + 1, tiny=tiny),
        }

    return make


@pytest.fixture(scope="session")
def recipe_models(tmp_path_factory):
    """Factory (size, seed=1234) -> (Generator, PSPEncoder) in float32 built directly from the recipe state
    dicts, without blendgan.weights: the 'model API' reference that command outputs are compared with.

    The models are made once and shared by every test of the session: never change them. A pipeline takes
    the modules it is given over (moves, freezes and prepares them in place), so build one on
    `copy.deepcopy(...)` of them (`tiny_models` is such a copy). The session checks at its end that they
    are as they were made (same tensors, train/eval mode and requires_grad)."""
    from blendgan.models.loading import from_state_dict

    files = helpers.session_recipe_files(tmp_path_factory)
    made, states = {}, {}

    def make(size, seed=helpers.GENERATOR_SEED, tiny=False):
        if (size, seed, tiny) not in made:
            g = from_state_dict(
                helpers.model_factory("generator", size, tiny), files.generator_state_dict(size, seed, tiny)
            )
            sd, latent_avg = helpers.psp_state_dict(size, seed + 1, tiny)
            psp_sd = {**{f"encoder.{k}": v for k, v in sd.items()}, "latent_avg": latent_avg}
            made[(size, seed, tiny)] = (g, from_state_dict(helpers.model_factory("psp_encoder", size, tiny), psp_sd))
            states[(size, seed, tiny)] = [_module_state(m) for m in made[(size, seed, tiny)]]
        return made[(size, seed, tiny)]

    yield make
    changed = [key for key, pair in made.items() if [_module_state(m) for m in pair] != states[key]]
    assert not changed, f"a test changed the shared recipe models {changed}: build pipelines on copy.deepcopy(...)"


def _module_state(module):
    """What a test must not change in a shared model: its tensors' names, shapes, dtypes and a checksum of their
    values, its mode and which parameters require grad."""
    import torch

    with torch.no_grad():
        tensors = [
            (name, tuple(t.shape), str(t.dtype), float(t.double().sum()))
            for name, t in module.state_dict(keep_vars=True).items()
        ]
    return tensors, module.training, [p.requires_grad for p in module.parameters()]


# ---------------------------------------------------------------- the narrow 64 px models most tests run
class WeightFiles(dict):
    """{'blendgan': path, 'psp_encoder': path}, and the command-line flags that name them."""

    @property
    def flags(self):
        return ["--ckpt", str(self["blendgan"]), "--psp_encoder_ckpt", str(self["psp_encoder"])]


@pytest.fixture(scope="session")
def tiny_weights(recipe_checkpoints):
    """Paths {'blendgan', 'psp_encoder'} of the 64 px recipe checkpoints at `helpers.TINY` widths: the files
    the command, pipeline, web app and job tests run (the published widths are checked elsewhere);
    `tiny_weights.flags` gives `--ckpt FILE --psp_encoder_ckpt FILE`."""
    return WeightFiles(recipe_checkpoints(64, tiny=True))


@pytest.fixture(scope="session")
def tiny_models(recipe_models):
    """(Generator, PSPEncoder) of `tiny_weights`, built from the state dicts without blendgan.weights: a copy of
    the shared recipe models per test module, so a test may hand them to a pipeline."""
    return copy.deepcopy(recipe_models(64, tiny=True))


@pytest.fixture(scope="module")
def tiny_bg(tiny_weights):
    """A CPU pipeline over `tiny_weights`, one per test module (its caches are per module)."""
    from blendgan import BlendGAN

    return BlendGAN.from_checkpoints(tiny_weights["blendgan"], tiny_weights["psp_encoder"], device="cpu")


@pytest.fixture()
def written(monkeypatch):
    """Records every image array the commands write through `images.write_image_atomic` (file name -> BGR
    array; a later file of the same name replaces the record), still writing the files."""
    from blendgan.io import images

    record = {}
    original = images.write_image_atomic

    def spy(path, img, *args, **kwargs):
        record[os.path.basename(path)] = img.copy()
        return original(path, img, *args, **kwargs)

    monkeypatch.setattr(images, "write_image_atomic", spy)
    return record


# ---------------------------------------------------------------- a local stand-in for the Hugging Face Hub
@pytest.fixture
def hub(monkeypatch, tmp_path_factory):
    """A `hub_helpers.HubServer` on 127.0.0.1 with HF_ENDPOINT pointed at it and an empty Hugging Face cache of
    its own (blendgan.weights.hub reads both at each call); `hub.add(repo_id, filename, bytes)` publishes."""
    from hub_helpers import HubServer

    server = HubServer()
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path_factory.mktemp("hf_cache")))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield server
    server.close()
