"""FID and KID against closed forms and direct implementations, the Inception path with a stand-in network
(contract, resize convention), the content-keyed cache, and the one-line errors of `blendgan eval`."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from metrics_helpers import make_stand_in, photo_folder, sha256

from blendgan.cli import main
from blendgan.errors import UsageError
from blendgan.metrics import cache, inception, stats
from blendgan.metrics.evaluate import Options, evaluate_folders


# ----------------------------------------------------------------------------- FID / KID numbers
def random_spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_distance_matches_the_closed_form_of_commuting_gaussians():
    # diagonal covariances commute: Tr(S1 + S2 - 2 sqrt(S1 S2)) = sum (sqrt(s1) - sqrt(s2))^2
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    s1, s2 = rng.uniform(0.2, 3, 5), rng.uniform(0.2, 3, 5)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(s1) - np.sqrt(s2)) ** 2).sum()
    assert stats.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_matches_the_closed_form_of_general_gaussians():
    # for any SPD S1, S2: Tr sqrt(S1 S2) = Tr sqrt(S1^1/2 S2 S1^1/2) (the symmetric form, computed by eigh)
    rng = np.random.default_rng(1)
    d = 6
    s1, s2 = random_spd(rng, d), random_spd(rng, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    w, v = np.linalg.eigh(s1)
    r1 = v @ np.diag(np.sqrt(w)) @ v.T
    inner = np.linalg.eigvalsh(r1 @ s2 @ r1)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(inner).sum()
    assert stats.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    assert stats.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0, abs=1e-9)


def test_fid_of_samples_approaches_the_distance_of_their_gaussians():
    rng = np.random.default_rng(2)
    d = 4
    s1, s2 = random_spd(rng, d), random_spd(rng, d)
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    x = rng.multivariate_normal(mu1, s1, 200_000)
    y = rng.multivariate_normal(mu2, s2, 200_000)
    expected = stats.frechet_distance(mu1, s1, mu2, s2)
    assert stats.fid(stats.Moments.of(x), stats.Moments.of(y)) == pytest.approx(expected, rel=0.02)


def direct_mmd2(x, y):
    """Unbiased MMD² with k(a, b) = (a·b / d + 1)^3, written as the sums over i != j."""
    m, d = x.shape
    k = lambda a, b: (a @ b / d + 1) ** 3
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_is_the_unbiased_cubic_mmd():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(12, 7)), rng.normal(0.4, 1.2, size=(12, 7))
    assert stats.mmd2_unbiased_cubic(x, y) == pytest.approx(direct_mmd2(x, y), rel=1e-10)
    # one subset holding every feature: KID is that MMD² (subsets are drawn without replacement)
    assert stats.kid(x, y, subsets=1, subset_size=12) == pytest.approx(direct_mmd2(x, y), rel=1e-10)
    # subsets: the mean of the direct MMD² of the same subsets
    rng_subsets = np.random.default_rng(7)
    expected = np.mean(
        [
            direct_mmd2(x[rng_subsets.choice(12, 5, replace=False)], y[rng_subsets.choice(12, 5, replace=False)])
            for _ in range(4)
        ]
    )
    assert stats.kid(x, y, subsets=4, subset_size=5, seed=7) == pytest.approx(expected, rel=1e-10)


def test_kid_is_near_zero_for_one_distribution_and_not_for_two():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(2000, 64)), rng.normal(size=(2000, 64))
    c = rng.normal(0.3, 1.0, size=(2000, 64))
    same, other = stats.kid(a, b, subsets=10, subset_size=500), stats.kid(a, c, subsets=10, subset_size=500)
    assert abs(same) < 0.01 * other and other > 0.05


# ----------------------------------------------------------------------------- the Inception path
@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    path = make_stand_in(tmp_path_factory.mktemp("inception") / inception.FILENAME)
    return path, sha256(path)


def test_resize_convention_is_clean_fids_antialiased_bicubic():
    rng = np.random.default_rng(5)
    img = (rng.random((97, 150, 3)) * 255).astype(np.uint8)
    img[30:60, 40:120] = 255  # sharp edges: filters differ most there
    got = inception.resize_for_inception(img)
    # the reference: torch's antialiased bicubic (Keys a = -0.5, the kernel Pillow's BICUBIC uses), float32, clipped
    x = torch.from_numpy(img.transpose(2, 0, 1).astype(np.float32))[None]
    ref = F.interpolate(x, size=(299, 299), mode="bicubic", align_corners=False, antialias=True).clamp(0, 255)[0]
    assert got.shape == (3, 299, 299) and got.dtype == np.float32
    assert np.abs(got - ref.numpy()).max() < 0.05
    assert not np.array_equal(got, np.round(got))  # not quantised back to integers
    # a 299 x 299 image is passed as it is
    square = (rng.random((299, 299, 3)) * 255).astype(np.uint8)
    np.testing.assert_array_equal(inception.resize_for_inception(square), square.transpose(2, 0, 1))


def test_features_follow_the_network_contract(stand_in):
    path, digest = stand_in
    net = inception.InceptionFeatures.load(path, expected_sha256=digest)
    rng = np.random.default_rng(6)
    imgs = [(rng.random((64, 64, 3)) * 255).astype(np.uint8) for _ in range(3)]
    feats = net(imgs)
    assert feats.shape == (3, 2048) and feats.dtype == np.float64
    # = the network on our 299 x 299 resize, not the network's own bilinear resize of the small image
    raw = torch.jit.load(str(path))
    ours = raw(torch.from_numpy(np.stack([inception.resize_for_inception(i) for i in imgs])), return_features=True)
    inside = raw(
        torch.from_numpy(np.stack([i.transpose(2, 0, 1) for i in imgs]).astype(np.float32)), return_features=True
    )
    np.testing.assert_allclose(feats, ours.double().numpy(), rtol=1e-6)
    assert np.abs(feats - inside.double().numpy()).max() > 1e-3


def test_the_published_hash_is_checked(stand_in, tmp_path):
    path, _ = stand_in
    with pytest.raises(UsageError, match="sha256 .* is not that of inception-2015-12-05.pt.*--inception"):
        inception.load_inception(path)
    with pytest.raises(UsageError, match="--inception .*missing.pt: file not found.*nvlabs-fi-cdn"):
        inception.load_inception(tmp_path / "missing.pt")


def test_the_file_is_found_in_blendgan_home(stand_in, tmp_path, monkeypatch):
    path = stand_in[0]
    monkeypatch.setenv("BLENDGAN_HOME", str(tmp_path))
    with pytest.raises(UsageError, match=r"inception-2015-12-05.pt not found in \$BLENDGAN_HOME"):
        inception.find_inception()
    (tmp_path / inception.FILENAME).write_bytes(path.read_bytes())
    assert inception.find_inception() == tmp_path / inception.FILENAME


# ----------------------------------------------------------------------------- folders, cache, errors
@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("metric_folders")
    return (
        photo_folder(base / "real", 12, seed=1),
        photo_folder(base / "fake", 10, seed=2),
        photo_folder(base / "styles", 10, seed=3, kind="styles"),
    )


def opts_for(stand_in, cache_dir, **kw):
    path, digest = stand_in
    kw = {"batch": 4, "kid_subsets": 10, **kw}
    return Options(inception=str(path), inception_sha256=digest, cache_dir=str(cache_dir), **kw)


def test_fid_and_kid_rank_sets_as_expected(stand_in, folders, tmp_path):
    real, fake, styles = folders
    near = evaluate_folders(real, fake, ["fid", "kid"], opts_for(stand_in, tmp_path))
    far = evaluate_folders(real, styles, ["fid", "kid"], opts_for(stand_in, tmp_path))
    assert 0 < near["fid"] < far["fid"] and near["kid"] < far["kid"]
    assert evaluate_folders(real, real, ["fid"], opts_for(stand_in, tmp_path))["fid"] == pytest.approx(0, abs=1e-6)


def test_the_cache_skips_the_reference_folder_and_follows_its_content(stand_in, folders, tmp_path, monkeypatch):
    real, fake, _ = folders
    first = evaluate_folders(real, fake, ["fid", "kid"], opts_for(stand_in, tmp_path / "c"))
    entries = list((tmp_path / "c").glob("inception-*.npz"))
    assert len(entries) == 1
    read = []
    import blendgan.metrics.evaluate as ev

    real_read = ev.read_rgb
    monkeypatch.setattr(ev, "read_rgb", lambda p, size=0: read.append(p.parent) or real_read(p, size))
    o = opts_for(stand_in, tmp_path / "c")
    second = evaluate_folders(real, fake, ["fid", "kid"], o)
    assert second == first and any("from the cache" in n for n in o.notes)
    assert set(read) == {fake}  # the reference folder was not read again
    # another option, another entry; a changed file, another key
    evaluate_folders(real, fake, ["fid"], opts_for(stand_in, tmp_path / "c", real_size=32))
    assert len(list((tmp_path / "c").glob("inception-*.npz"))) == 2
    files = sorted(real.iterdir())
    key = cache.content_key(files, "x", {})
    files[0].write_bytes(files[0].read_bytes() + b"\0")  # appended bytes: same picture, new size
    assert cache.content_key(files, "x", {}) != key


def test_unreadable_images_are_reported_and_skipped(stand_in, folders, tmp_path, capsys):
    real, fake, _ = folders
    bad = tmp_path / "fake"
    bad.mkdir()
    for f in sorted(fake.iterdir()):
        (bad / f.name).write_bytes(f.read_bytes())
    (bad / "zz_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (bad / "zz_empty.png").write_bytes(b"")
    with_bad = evaluate_folders(real, bad, ["fid", "kid"], opts_for(stand_in, tmp_path))
    err = capsys.readouterr().err
    assert "skipped (fake):" in err and "zz_broken.jpg" in err and "zz_empty.png" in err
    assert with_bad == evaluate_folders(real, fake, ["fid", "kid"], opts_for(stand_in, tmp_path))


def run_eval(*args):
    return main(["eval", *map(str, args)])


def test_command_errors_are_one_line(stand_in, folders, tmp_path, capsys, monkeypatch):
    real, fake, _ = folders
    monkeypatch.setenv("BLENDGAN_HOME", str(tmp_path / "home"))
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["--real", real, "--fake", fake], "inception-2015-12-05.pt not found in $BLENDGAN_HOME"),
        (["--real", real, "--fake", fake, "--inception", tmp_path / "nope.pt"], "--inception"),
        (["--real", real, "--fake", fake, "--inception", stand_in[0]], "sha256"),
        (["--real", empty, "--fake", fake, "--inception", stand_in[0]], "no images found"),
        (["--real", real, "--fake", tmp_path / "nowhere"], "no such folder"),
        (["--real", real, "--fake", fake, "--metrics", "fid,bogus"], "unknown bogus"),
        (["--real", real, "--n", "4"], "--ckpt"),
        (
            ["--real", real, "--fake", fake, "--metrics", "style", "--style_encoder", tmp_path / "x.pt"],
            "file not found",
        ),
    ]
    for args, needle in cases:
        assert run_eval(*args, "--device", "cpu", "--no_cache") == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and needle in err, (args, err)


def test_command_prints_a_table_and_writes_json(stand_in, folders, tmp_path, capsys, monkeypatch):
    real, fake, _ = folders
    monkeypatch.setenv("BLENDGAN_HOME", str(tmp_path))
    (tmp_path / inception.FILENAME).write_bytes(stand_in[0].read_bytes())
    monkeypatch.setattr(inception, "SHA256", stand_in[1])
    out = tmp_path / "m.json"
    # the API's batch (opts_for): float32 features may differ in the last bits between batch sizes
    assert (
        run_eval(
            "--real",
            real,
            "--fake",
            fake,
            "--device",
            "cpu",
            "--json",
            out,
            "--cache_dir",
            tmp_path / "c",
            "--kid_subsets",
            10,
            "--batch_size",
            4,
        )
        == 0
    )
    values = json.loads(out.read_text())
    table = capsys.readouterr().out
    assert set(values) == {"fid", "kid"}
    assert f"fid  {values['fid']:.6g}" in table and f"kid  {values['kid']:.6g}" in table
    assert values == evaluate_folders(real, fake, ["fid", "kid"], opts_for(stand_in, tmp_path / "c"))


def test_command_generates_on_the_fly(stand_in, folders, recipe_checkpoints, tmp_path, monkeypatch):
    from blendgan.metrics.evaluate import evaluate_generator
    from blendgan.weights import load_generator

    real, _, _ = folders
    ckpt = recipe_checkpoints(64, tiny=True)["blendgan"]
    monkeypatch.setattr(inception, "SHA256", stand_in[1])
    out = tmp_path / "m.json"
    assert (
        run_eval(
            "--ckpt",
            ckpt,
            "--n",
            5,
            "--real",
            real,
            "--inception",
            stand_in[0],
            "--device",
            "cpu",
            "--no_cache",
            "--json",
            out,
            "--seed",
            3,
        )
        == 0
    )
    values = json.loads(out.read_text())
    g, _ = load_generator(ckpt)
    same_options = opts_for(stand_in, "off", seed=3, kid_subsets=100, batch=16)  # the command's defaults
    assert values == evaluate_generator(g.eval(), 5, real, ["fid", "kid"], same_options)
    assert run_eval("--ckpt", ckpt, "--n", 5, "--real", real, "--fake", real, "--metrics", "id", "--device", "cpu") == 2
