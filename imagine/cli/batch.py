"""``imagine batch MANIFEST.jsonl --out DIR [--resume] [--check] [--server URL]``: many
generations, resumably, in this process or on a running service.

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
    from imagine.batch.executor import Executor
    from imagine.batch.manifest import Manifest

NAME = "batch"
HELP = "Generate images for every line of a JSONL manifest: resumable, keeps going, reports."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, metavar="MANIFEST.jsonl", help="one item per line")
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder: <item>/<k>.png, state, reports"
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


class Target:
    """Where the images are made: this process (local) or a service (``--server``).

    Holds what the manifest is checked against: defaults for lines that leave size
    or steps out, the generation bounds and the photo limit."""

    def __init__(self, args: argparse.Namespace, settings: Settings):
        from imagine.batch.manifest import ItemDefaults

        self.server: str | None = args.server or settings.batch_server
        if self.server:
            self._connect(self.server, args, settings)
        else:
            from imagine.models import DEFAULTS, check_config

            self.settings = with_model_arguments(settings, args)
            check_config(self.settings.models(embedding_dim=0))  # a bad profile stops here
            profile = DEFAULTS[self.settings.profile]
            self.defaults = ItemDefaults(profile.width, profile.height, profile.steps)
            self.limits = self.settings.generation_limits()
            self.max_photos = self.settings.max_enroll_photos
            self.is_noise = profile.is_noise
        width, height = parse_size(args.size) if args.size else (None, None)
        self.defaults = ItemDefaults(
            width=width or self.defaults.width,
            height=height or self.defaults.height,
            steps=self.defaults.steps if args.steps is None else args.steps,
        )

    def _connect(self, server: str, args: argparse.Namespace, settings: Settings) -> None:
        from imagine.batch.client import ServiceClient, ServiceConfig

        local_only = [f"--{n.replace('_', '-')}" for n in MODEL_FLAGS if getattr(args, n)]
        if local_only:
            raise UsageError(
                f"{', '.join(local_only)} choose the models of local mode; the service "
                "uses its own (drop them, or drop --server)"
            )
        if not 1 <= args.concurrency <= 32:
            raise UsageError(f"--concurrency must be 1-32, got {args.concurrency}")
        self.config = ServiceConfig(
            url=server.rstrip("/"),
            api_key=args.api_key or settings.batch_api_key,
            concurrency=args.concurrency,
            consent_version=args.consent_version,
            residence=args.residence,
        )
        self.client = ServiceClient(self.config)
        self.info = self.client.info()  # unreachable, or not an Imagine Me service: exit 2
        self.defaults, self.limits = self.info.defaults, self.info.limits
        self.max_photos = self.info.max_enroll_photos
        self.is_noise = self.info.profile_is_noise

    def executor(self, manifest: Manifest) -> tuple[Executor, dict[str, Any]]:
        """The executor and the context that fingerprints its images; checks the API key and,
        when photos are to be enrolled, the declared consent, before any work."""
        from imagine.batch.executor import get_executor
        from imagine.batch.runner import image_context

        if not self.server:
            executor = get_executor("local", self.settings)
            return executor, image_context(self.settings, executor.name)
        from imagine.batch.client import ServiceError
        from imagine.batch.service import ServiceExecutor

        if not self.config.api_key:
            raise ServiceError(
                "service mode needs an API key: set IMAGINE_BATCH_API_KEY (or pass --api-key)",
                code="api_key_required",
            )
        self.client.identities()  # a bad key: 401 unauthorized, exit 2
        enrolling = [item.line for item in manifest.items if not item.identity_id]
        if enrolling:
            self._check_consent(enrolling)
        context = {"executor": "service", "server": self.config.url, "profile": self.info.profile}
        return ServiceExecutor(self.config, self.info), context

    def _check_consent(self, lines: list[int]) -> None:
        from imagine.batch.client import ServiceError

        where = f"line(s) {', '.join(map(str, lines[:10]))}{' ...' if len(lines) > 10 else ''}"
        current = self.client.consent_version()
        if not (self.config.consent_version and self.config.residence):
            raise ServiceError(
                f"{where} enroll photos on the service: pass --consent-version {current} (the "
                "version of the text at GET /v1/consent that every person in them accepted) and "
                "--residence (where they live, e.g. US-CA)",
                code="consent_required",
            )
        if self.config.consent_version != current:
            raise ServiceError(
                f"--consent-version {self.config.consent_version!r} is not the service's current "
                f"consent text ({current}); show people the text at GET /v1/consent",
                code="consent_outdated",
            )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from imagine.batch.manifest import read_manifest
    from imagine.batch.runner import BatchRun

    target = Target(args, settings)
    manifest = read_manifest(
        args.manifest,
        target.defaults,
        target.limits,
        target.max_photos,
        service=bool(target.server),
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

    executor, context = target.executor(manifest)
    if target.server:
        print(f"submitting to {target.server}", file=sys.stderr)
    with StopOnSignal() as stop:
        outcome = BatchRun(
            manifest,
            args.out,
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
        print(describe(report, args.out))
    for note in report["notes"]:
        print(f"note: {note}", file=sys.stderr)
    if target.is_noise and report["images"]["written_this_run"]:
        print(f"note: {SMOKE_NOTICE}", file=sys.stderr)
    if outcome.status == "interrupted":
        return EXIT_INTERRUPTED
    return EXIT_FAILED if outcome.failed else EXIT_OK


def describe(report: dict[str, Any], out: Path) -> str:
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
        lines.append(f"run again with --resume to finish: imagine batch ... --out {out} --resume")
    lines.append(f"report: {out / 'report.json'}, {out / 'report.html'}")
    return "\n".join(lines)
