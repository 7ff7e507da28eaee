"""Shared test fixtures: the conformance fixture from ../shared and a session cache of recipe weights.

Recipe generator weights are expensive (the 610304x512 style matrix takes ~10 s and 2.5 GB in
float64), so the `embedder.*` entries, identical for every generator size with the same seed, are
generated once per session and shared by every size and dtype that needs them.
"""
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
CONFORMANCE = ROOT.parent / "shared" / "conformance"
SKIP_REASON = f"conformance fixture not found at {CONFORMANCE} (clone the repo beside ../shared to run these)"


def load_conformance():
    """The fixture's helper module, or None when ../shared is absent."""
    if not (CONFORMANCE / "check_conformance.py").is_file():
        return None
    if str(CONFORMANCE) not in sys.path:
        sys.path.insert(0, str(CONFORMANCE))
    import check_conformance

    return check_conformance


class RecipeWeights:
    """Recipe state dicts, cached per (kind, size, seed, dtype); embedder entries shared across sizes."""

    def __init__(self, cc):
        self.cc = cc
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
            return {k: v.to(dtype) for k, v in self._embedder(seed, torch.float64).items()}
        return self._get(("embedder", seed, dtype), make)

    def generator(self, size, seed=1234, dtype=torch.float64):
        """Full generator state dict (ordered as the official key list)."""
        def make():
            keys = self.cc.load_keys(f"generator_{size}")
            emb = self._embedder(seed, dtype)
            rest = self.cc.recipe_state_dict([k for k in keys if not k[0].startswith("embedder.")], seed, dtype)
            return {k: (emb[k] if k in emb else rest[k]) for k, _, _ in keys}
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
    module = load_conformance()
    if module is None:
        pytest.skip(SKIP_REASON)
    return module


@pytest.fixture(scope="session")
def recipe(cc):
    return RecipeWeights(cc)
