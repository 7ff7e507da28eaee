"""Kept for code that imports `blendgan.download`: the downloader lives in `blendgan.weights.download`."""
from .weights.download import DRIVE_URL, STAGING_SUFFIX, URL_ENV, download_one, download_weights, weight_url  # noqa: F401
from .weights.home import HOME_ENV, default_weight_path, weights_dir  # noqa: F401
