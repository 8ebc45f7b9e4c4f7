"""Model profiles and loading: the one place where weights are found and speed switches live.

Modules: ``config`` (profiles, settings schema, defaults: light, what the API reads),
``files`` (finding weight files on disk), ``loading`` (building the pipeline and
adapter surgery) and ``speed`` (the speed switches).

Profiles:
- ``smoke`` (default): tiny random-weight SDXL built once into the model cache
  (``imagine/smoke.py``), then loaded like real weights. Images are noise.
- ``sdxl``: SDXL base from a local diffusers folder or a single-file
  checkpoint, plus an IP-Adapter FaceID SDXL weight file, all local.

Face adapter variants (``faceid_variant``), in either profile:
- ``faceid``: IP-Adapter FaceID; the face embedding alone.
- ``plusv2``: IP-Adapter FaceID Plus v2; the face embedding plus CLIP ViT-H/14
  features of the aligned face crop (face structure), so it also loads a CLIP
  image encoder and every call needs the identity's crops.

``load_pipeline`` reads top to bottom: find files, load components, pick
device and dtype, then each speed switch as its own ``if`` block
(``apply_speed_switches``, after diffusion-fast's loader). The benchmarks build
random full-size weights in memory and enter at ``prepare_pipeline``, so they
time exactly what the service runs.
"""
