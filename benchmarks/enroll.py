"""Enrollment latency per photo with the dlib backend, on one CPU core.

    python benchmarks/enroll.py [--sizes 0.25,1,4] [--repeat 7] [--resnet onnxruntime|dlib] [--json]

Real portraits (scikit-image's astronaut, matplotlib's Grace Hopper) are
resized to each size in megapixels and encoded as JPEG (quality 90), then
enrolled one photo at a time. The table gives the median of ``--repeat`` runs
for each stage of ``identity.enrollment.analyze_photo`` (ingest: decode, EXIF,
RGB; detect: HOG passes, landmarks and the face gates; align: the two aligned
crops and the quality gates; embed: the 150 px chip and the ResNet), and
``enroll()`` end to end, whose inverse is faces per second on one core.

Times are the process's CPU time (``time.process_time``), which other
processes on a shared machine do not inflate; the wall-clock median of
``enroll()`` is printed next to it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout, not an install

from PIL import Image

from identity.enrollment import EnrollmentConfig, enroll
from identity.ingest import load_photo
from identity.quality import QUALITY_CROP, check, measure, select_face

STAGES = ("ingest", "detect", "align", "embed")


def portraits() -> dict[str, Image.Image]:
    import matplotlib.cbook
    from skimage import data

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = Image.open(f).convert("RGB")
    return {"astronaut": Image.fromarray(data.astronaut()), "hopper": hopper}


def photo_at(image: Image.Image, megapixels: float) -> bytes:
    scale = (megapixels * 1e6 / (image.width * image.height)) ** 0.5
    size = (round(image.width * scale), round(image.height * scale))
    buf = io.BytesIO()
    image.resize(size, Image.Resampling.BICUBIC).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def stage_times(data: bytes, analyzer, config: EnrollmentConfig) -> dict[str, float]:
    """CPU seconds per stage, the same steps as ``analyze_photo``."""
    clock = time.process_time
    t0 = clock()
    pixels = load_photo(data, config.limits).array()
    t1 = clock()
    face, detected = select_face(analyzer.detect(pixels), analyzer, config.thresholds)
    t2 = clock()
    quality = measure(pixels, face, analyzer.align(pixels, face, QUALITY_CROP), detected)
    check(quality, config.thresholds)
    analyzer.align(pixels, face, config.crop_size)
    t3 = clock()
    analyzer.embed(pixels, face)
    t4 = clock()
    return dict(zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True))


def timed_ms(run: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median CPU and wall-clock milliseconds of ``repeat`` runs."""
    cpu, wall = [], []
    for _ in range(repeat):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        run()
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    return statistics.median(cpu) * 1000, statistics.median(wall) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="0.25,1,4", help="megapixels, comma-separated")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--resnet", default="onnxruntime", choices=("onnxruntime", "dlib"))
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    args = parser.parse_args()

    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})  # one core: the figure a single worker gets

    from identity.dlib_backend import DlibFaceAnalyzer

    start = time.perf_counter()
    analyzer = DlibFaceAnalyzer(resnet=args.resnet)
    load_s = time.perf_counter() - start
    config = EnrollmentConfig()
    rows = []
    for name, image in portraits().items():
        for megapixels in (float(s) for s in args.sizes.split(",")):
            data = photo_at(image, megapixels)
            enroll([data], analyzer, config)  # warm-up; also proves the photo enrolls
            runs = [stage_times(data, analyzer, config) for _ in range(args.repeat)]
            total, wall = timed_ms(lambda data=data: enroll([data], analyzer, config), args.repeat)
            width, height = Image.open(io.BytesIO(data)).size
            face = enroll([data], analyzer, config).photos[0].quality.face_px
            row = {
                "photo": name,
                "size": f"{width}x{height}",
                "megapixels": round(width * height / 1e6, 2),
                "face_px": face,
                **{f"{s}_ms": statistics.median(r[s] for r in runs) * 1000 for s in STAGES},
                "enroll_ms": total,
                "enroll_wall_ms": wall,
                "faces_per_s": 1000 / total,
            }
            rows.append(row)

    print(
        f"dlib backend, ResNet on {args.resnet}, CPU core {core} only; models loaded in "
        f"{load_s:.2f} s; median CPU time of {args.repeat} runs"
    )
    header = f"{'photo':<10}{'size':>10}{'MP':>6}{'face':>6}"
    header += "".join(f"{s + ' ms':>11}" for s in STAGES)
    header += f"{'enroll ms':>11}{'faces/s':>9}{'wall ms':>9}"
    print(header)
    for r in rows:
        line = f"{r['photo']:<10}{r['size']:>10}{r['megapixels']:>6.2f}{r['face_px']:>6}"
        line += "".join(f"{r[s + '_ms']:>11.1f}" for s in STAGES)
        print(line + f"{r['enroll_ms']:>11.1f}{r['faces_per_s']:>9.1f}{r['enroll_wall_ms']:>9.1f}")
    if args.json:
        print(json.dumps({"resnet": args.resnet, "model_load_s": load_s, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
