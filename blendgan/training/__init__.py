"""Training: shared pieces (config, data, distribution, run folder and snapshots, log, progress) and one
loop module per trainer (`generator_loop`: the BlendGAN generator with its Weighted Blending Module against
three discriminators). Nothing here is imported by the inference code."""
