"""Weight files: one module per job, importable without torch where the job does not need it.

    home             the published files, where they live ($BLENDGAN_HOME) and how to get them (no torch)
    safetensors_file the .safetensors format: validated, memory-mapped reading and aligned writing
    manifest         manifest.json beside downloaded files: sha256, size, verification
    reading          the one safe door for reading a file: sniffing, .pt via weights_only, .safetensors
    layouts          what a checkpoint dict holds: its kind, and key/shape checks against the models
    building         models built from checkpoint dicts and files (load_generator, ...)
    convert          .pt -> .safetensors
    describe         what `blendgan info` prints
    download         fetching the published files, checked and recorded in the manifest

The modules import only downwards in this list (and never each other in a circle); `blendgan.checkpoints`
re-exports the public names in one place.
"""
