"""Constants that several layers share (commands, jobs, the web app, the trainers), kept in one place.

Nothing is imported here, so the command-line help can read them without loading torch.
"""

# the layer index of the Weighted Blending Module: the original's default for pictures and for videos
ADD_WEIGHT_INDEX = 6
VIDEO_ADD_WEIGHT_INDEX = 7
# frames per second of every video written (the original's gen_video.py)
VIDEO_FPS = 30
# mapped codes averaged for the mean latent (truncation centre, a generator's latent_avg when none is stored)
LATENT_AVG_SAMPLES = 4096
# inference precisions (blendgan.pipeline maps them to dtypes) and the trainers' (fp64: numeric checks)
PRECISIONS = ("fp32", "bf16", "fp16")
TRAINING_PRECISIONS = ("fp32", "bf16", "fp16", "fp64")

# whole photos and videos (`blendgan stylize`, blendgan.photo):
# photos are searched for faces on a copy whose longer side is at most this (with dlib's 2x upsampling,
# faces down to ~40 px at this scale are found); landmarks and crops use the full resolution
DETECT_SIZE = 1024
# default smallest face stylized: the crop side in photo pixels. The pSp encoder reads its input at
# 256 px; a crop much smaller than half of that is mostly upsampling blur, and the generated face,
# shrunk back to that size, loses the style's strokes.
MIN_FACE = 96
# dlib's HOG detector, run with threshold 0, also reports textures that are not faces; real faces of the
# bundled photos score above 1, the false detection on the astronaut's suit patch 0.02
MIN_SCORE = 0.3
# videos: frames per segment, the unit of resuming and of sharing the work among processes
SEGMENT_FRAMES = 48
# videos: Gaussian smoothing over time, in frames (standard deviation), of landmarks and face codes
VIDEO_SMOOTH = 2.0
