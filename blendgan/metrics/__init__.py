"""Quality metrics as the field computes them, offline: FID and KID (Inception), identity kept (dlib ResNet or
ArcFace), style taken (style encoder), diversity and reconstruction (VGG19 perceptual distance).
See docs/metrics.md; `blendgan eval` is the command, `evaluate_snapshot` the training hook.

    stats.py       FID / KID from feature matrices
    inception.py   the Inception file (path, sha256), the resize convention, pool features
    identity.py    dlib / ArcFace face embeddings;  style.py  style codes;  perceptual.py  VGG19 distances
    cache.py       reference features cached by content;  sharing.py  torchrun sharing with identical numbers
    evaluate.py    the metrics over folders or generated images;  snapshot.py  metrics at training snapshots
"""
