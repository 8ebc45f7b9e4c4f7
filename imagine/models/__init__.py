"""Model profiles and loading: the one place where weights are found and speed switches live.

Modules: ``config`` (profiles, settings schema, defaults: light, what the API reads),
``files`` (finding weight files on disk), ``loading`` (building the pipeline and
adapter surgery), ``lora`` (the FaceID LoRA) and ``speed`` (the speed switches).

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
- ``instantid``: InstantID; the 512-d embedding through its resampler adapter, and
  the face's five keypoints through IdentityNet (a ControlNet), so it loads the
  ControlNet pipeline and every call needs the identity's keypoints.

Every FaceID adapter file carries the LoRA it was trained with; ``lora`` checks that
diffusers applied it (through PEFT), scales it and fuses it.

``load_pipeline`` reads top to bottom: find files, load components, pick
device and dtype, then each speed switch as its own ``if`` block
(``apply_speed_switches``, after diffusion-fast's loader). The benchmarks build
random full-size weights in memory and enter at ``prepare_pipeline``, so they
time exactly what the service runs.
"""
