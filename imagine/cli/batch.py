"""``imagine batch MANIFEST.jsonl --out DIR [--resume] [--check] [--server URL | --ray]``:
many generations, resumably, in this process, on Ray actors or on a running service.

Invalid lines are reported with their numbers before any work; the valid ones
run. Exit 0 when every item succeeded, 1 when any failed (or, with ``--check``,
any line is invalid), 2 on a user error that stops the whole run, 130 when
stopped by Ctrl-C or SIGTERM (the state is resumable).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from imagine.cli.generate import MODEL_FLAGS, add_model_arguments, with_model_arguments
from imagine.cli.output import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError, emit_json
from imagine.cli.progress import ProgressBar
from imagine.outputs import SMOKE_NOTICE
from imagine.request import parse_size
from imagine.settings import Settings

if TYPE_CHECKING:
    from imagine.batch.destination import Destination
    from imagine.batch.executor import Target
    from imagine.batch.manifest import ItemDefaults

NAME = "batch"
HELP = "Generate images for every line of a JSONL manifest: resumable, keeps going, reports."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, metavar="MANIFEST.jsonl", help="one item per line")
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR|s3://BUCKET/PREFIX",
        help="where the images, the state and the reports go: a folder, or an S3 prefix "
        "(IMAGINE_S3_ENDPOINT_URL for a non-AWS server)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out, keeping finished images"
    )
    parser.add_argument(
        "--check", action="store_true", help="only validate the manifest; load and write nothing"
    )
    parser.add_argument("--steps", type=int, help="steps for lines without one (profile default)")
    parser.add_argument("--size", help="WxH for lines without one (profile default)")
    add_model_arguments(parser)
    service = parser.add_argument_group(
        "service mode", "submit the manifest to a running Imagine Me service instead"
    )
    service.add_argument(
        "--server",
        metavar="URL",
        help="the service, e.g. http://127.0.0.1:8000 (IMAGINE_BATCH_SERVER)",
    )
    service.add_argument(
        "--api-key",
        metavar="KEY",
        help="its API key; prefer IMAGINE_BATCH_API_KEY, which other users cannot see in ps",
    )
    service.add_argument(
        "--concurrency",
        type=int,
        default=4,
        metavar="N",
        help="generation jobs in flight at once, 1-32 (default 4)",
    )
    service.add_argument(
        "--consent-version",
        metavar="V",
        help="lines with photos: the consent text version (GET /v1/consent) their people accepted",
    )
    service.add_argument(
        "--residence",
        metavar="CODE",
        help="lines with photos: the residence declared for their people (ISO 3166, e.g. US-CA)",
    )
    ray = parser.add_argument_group(
        "ray mode", "make the images on a Ray cluster's GPUs (Ray Data), with the local models"
    )
    ray.add_argument("--ray", action="store_true", help="run the generation on Ray actors")
    ray.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="the cluster's head, host:port (IMAGINE_RAY_ADDRESS; default: start a local Ray)",
    )
    ray.add_argument(
        "--replicas",
        type=int,
        default=1,
        metavar="N",
        help="generation actors, each loading the models once: a GPU each where the cluster "
        "has GPUs, else a CPU (default 1)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")


class StopOnSignal:
    """The first SIGINT or SIGTERM asks the run to stop after the current denoising step;
    a second SIGINT aborts at once (the state stays resumable either way)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self.previous: dict[int, Any] = {}

    def is_set(self) -> bool:
        return self.requested

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        print(
            f"\n{signal.Signals(signum).name}: stopping after the current step "
            "(Ctrl-C again to abort now); --resume continues",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


class LazyProgressBar:
    """A ``ProgressBar`` whose rate and ETA count from its first update, not from model loading."""

    def __init__(self, label: str, unit: str):
        self.label, self.unit = label, unit
        self.bar: ProgressBar | None = None

    def update(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = ProgressBar(self.label, self.unit)
        self.bar.update(done, total)


def pick_executor(args: argparse.Namespace, settings: Settings) -> tuple[str, Settings]:
    """The executor's name (``service`` with a server, else ``local``) and the settings with
    this command's flags in them; the other executor's flags are refused, not ignored."""
    settings = with_model_arguments(settings, args).replace(
        batch_server=args.server or settings.batch_server,
        batch_api_key=args.api_key or settings.batch_api_key,
    )
    if args.ray and settings.batch_server:
        raise UsageError(
            "--ray makes the images with local models; --server on a service: pick one"
        )
    if not args.ray and (args.ray_address or args.replicas != 1):
        raise UsageError("--ray-address and --replicas are for --ray")
    if args.ray:
        if args.replicas < 1:
            raise UsageError(f"--replicas must be at least 1, got {args.replicas}")
        return "ray", settings
    if not settings.batch_server:
        return "local", settings
    local_only = [f"--{n.replace('_', '-')}" for n in MODEL_FLAGS if getattr(args, n)]
    if local_only:
        raise UsageError(
            f"{', '.join(local_only)} choose the models of local mode; the service "
            "uses its own (drop them, or drop --server)"
        )
    if not 1 <= args.concurrency <= 32:
        raise UsageError(f"--concurrency must be 1-32, got {args.concurrency}")
    return "service", settings


def item_defaults(target: Target, args: argparse.Namespace) -> ItemDefaults:
    """For lines that leave size or steps out: ``--size`` and ``--steps``, else the target's."""
    from imagine.batch.manifest import ItemDefaults

    width, height = parse_size(args.size) if args.size else (None, None)
    return ItemDefaults(
        width=width or target.defaults.width,
        height=height or target.defaults.height,
        steps=target.defaults.steps if args.steps is None else args.steps,
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from imagine.batch.destination import open_destination
    from imagine.batch.executor import BatchOptions, get_target
    from imagine.batch.manifest import read_manifest
    from imagine.batch.runner import BatchRun

    name, settings = pick_executor(args, settings)
    options = BatchOptions(
        args.concurrency,
        args.consent_version,
        args.residence,
        replicas=args.replicas,
        ray_address=args.ray_address or settings.ray_address,
    )
    target = get_target(name, settings, options)
    manifest = read_manifest(
        args.manifest,
        item_defaults(target, args),
        target.limits,
        target.max_photos,
        service=target.server is not None,
    )
    for bad in manifest.invalid:
        print(f"{args.manifest}:{bad.line}: {bad.code}: {bad.message}", file=sys.stderr)

    if args.check:
        if args.json:
            emit_json(
                {
                    "valid": len(manifest.items),
                    "invalid": [vars(bad) for bad in manifest.invalid],
                    "images": manifest.image_count,
                }
            )
        else:
            print(
                f"{args.manifest}: {len(manifest.items)} valid item(s) making "
                f"{manifest.image_count} image(s), {len(manifest.invalid)} invalid line(s)"
            )
        return EXIT_FAILED if manifest.invalid else EXIT_OK

    out = open_destination(args.out, settings.s3_endpoint_url)  # a missing bucket stops here
    executor, context = target.executor(manifest)
    if target.server:
        print(f"submitting to {target.server}", file=sys.stderr)
    with StopOnSignal() as stop:
        outcome = BatchRun(
            manifest,
            out,
            executor,
            context=context,
            resume=args.resume,
            should_stop=stop.is_set,
            progress=LazyProgressBar("batch", "images").update,
            say=lambda line: print(line, file=sys.stderr, flush=True),
        ).run()

    report = outcome.report
    if args.json:
        emit_json(report)
    else:
        print(describe(report, out))
    for note in report["notes"]:
        print(f"note: {note}", file=sys.stderr)
    if target.is_noise and report["images"]["written_this_run"]:
        print(f"note: {SMOKE_NOTICE}", file=sys.stderr)
    if outcome.status == "interrupted":
        return EXIT_INTERRUPTED
    return EXIT_FAILED if outcome.failed else EXIT_OK


def describe(report: dict[str, Any], out: Destination) -> str:
    items, images = report["items"], report["images"]
    lines = [
        f"batch {report['status']}: {items['done']} of {items['total']} items done, "
        f"{items['failed']} failed, {items['pending']} pending; {images['done']} of "
        f"{images['total']} images ({images['written_this_run']} made by this run, "
        f"{report['images_per_minute']} per minute)"
    ]
    lines += [
        f"  line {f['line']} ({f['id']}): {f['code']}: {f['message']}" for f in report["failures"]
    ]
    if report["status"] == "interrupted":
        lines.append(
            f"run again with --resume to finish: imagine batch ... --out {out.location} --resume"
        )
    lines.append(f"report: {out.show('report.json')}, {out.show('report.html')}")
    return "\n".join(lines)
