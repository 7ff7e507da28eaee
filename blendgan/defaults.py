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
