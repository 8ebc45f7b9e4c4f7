"""The batch manifest: one JSON object per line, each validated before any work starts.

A line asks for images of one person: ``photos`` (paths, relative to the
manifest's folder) or ``identity_id`` (service mode only), and ``prompt`` or
``prompts``; optionally ``id``, ``style``, ``n``, ``seed``, ``size`` ("WxH")
and ``steps``. A bad line becomes an ``InvalidLine`` with its number and a
stable code; the good lines still run.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagine.errors import ImagineError
from imagine.request import GenerationLimits, GenerationSpec, InvalidArgument, parse_size
from llm_prompting import PromptingError

FIELDS = ("id", "photos", "identity_id", "prompt", "prompts", "style", "n", "seed", "size", "steps")
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # also a safe folder name


class ManifestError(ImagineError):
    """The manifest as a whole cannot be used (missing, unreadable, empty)."""

    code = "invalid_manifest"


class LineError(ImagineError):
    """One line is refused; ``code`` says why."""

    code = "invalid_item"


@dataclass(frozen=True)
class ItemDefaults:
    """What a line gets when it leaves a field out (profile defaults or CLI flags)."""

    width: int
    height: int
    steps: int
    n: int = 1


@dataclass(frozen=True)
class BatchItem:
    """One valid line: images ``k = p * n + j`` for prompt ``p``, copy ``j`` (seed + j)."""

    id: str
    line: int
    photos: tuple[Path, ...]  # empty when the line names an identity_id
    photo_key: str  # sha256 of the photos (or "identity:<id>"): equal keys share one enrollment
    prompts: tuple[str, ...]
    style: str | None
    n: int
    seed: int | None  # None: drawn once and kept in the state file
    width: int
    height: int
    steps: int
    identity_id: str | None = None  # an identity enrolled in the service (service mode only)

    @property
    def image_count(self) -> int:
        return len(self.prompts) * self.n

    def request(self, prompt: str) -> GenerationSpec:
        """The generation request of one of the line's prompts."""
        return GenerationSpec(
            prompt, self.n, self.seed, self.steps, self.width, self.height, self.style
        )

    def spec(self) -> dict[str, Any]:
        """What the images depend on, for the resume fingerprint."""
        return {
            "photos": self.photo_key,
            "prompts": list(self.prompts),
            "style": self.style,
            "n": self.n,
            "seed": self.seed,
            "size": [self.width, self.height],
            "steps": self.steps,
        }


@dataclass(frozen=True)
class InvalidLine:
    line: int
    id: str  # the line's own id when it gave a usable one, else line-<N>
    code: str
    message: str


@dataclass(frozen=True)
class Manifest:
    path: Path
    items: tuple[BatchItem, ...]
    invalid: tuple[InvalidLine, ...]

    @property
    def image_count(self) -> int:
        return sum(item.image_count for item in self.items)


def read_manifest(
    path: Path,
    defaults: ItemDefaults,
    limits: GenerationLimits,
    max_photos: int = 5,
    *,
    service: bool = False,
) -> Manifest:
    """Parse and check every line; only whole-file problems raise (``ManifestError``).

    ``service``: the run submits to a service, so a line may name an ``identity_id``
    enrolled there instead of photos."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such file", code="file_not_found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot be read as UTF-8 text: {exc}") from None
    reader = _LineReader(path.parent, defaults, limits, max_photos, service)
    items, invalid, seen = [], [], set()
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item = reader.parse(raw, number)
            if item.id in seen:
                raise LineError(f"id {item.id!r} is used by an earlier line", code="duplicate_id")
            seen.add(item.id)
            items.append(item)
        except (ImagineError, PromptingError) as exc:
            invalid.append(InvalidLine(number, reader.last_id, exc.code, exc.message))
    if not items and not invalid:
        raise ManifestError(
            f"{path} holds no items (one JSON object per line)", code="empty_manifest"
        )
    return Manifest(path=path, items=tuple(items), invalid=tuple(invalid))


class _LineReader:
    def __init__(
        self,
        base: Path,
        defaults: ItemDefaults,
        limits: GenerationLimits,
        max_photos: int,
        service: bool,
    ):
        self.base, self.defaults, self.limits, self.max_photos = base, defaults, limits, max_photos
        self.service = service
        self.hashes: dict[Path, str] = {}  # photo path -> content sha256, read once per run
        self.last_id = ""

    def parse(self, raw: str, number: int) -> BatchItem:
        self.last_id = f"line-{number:04d}"
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise LineError(
                f"not valid JSON: {exc.msg} at column {exc.colno}", code="invalid_json"
            ) from None
        if not isinstance(obj, dict):
            raise LineError(f"each line must be a JSON object, got {type(obj).__name__}")
        unknown = sorted(set(obj) - set(FIELDS))
        if unknown:
            raise LineError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")

        item_id = obj.get("id", self.last_id)
        if not isinstance(item_id, str) or not ID_PATTERN.fullmatch(item_id):
            raise LineError(
                f"id must be 1-64 letters, digits, '-' or '_' (not first), got {item_id!r}",
                code="invalid_id",
            )
        self.last_id = item_id
        prompts = self.prompts(obj)
        identity_id = self.identity(obj)
        photos = () if identity_id else self.photos(obj)
        style = obj.get("style")
        if style is not None and not isinstance(style, str):
            raise LineError(f"style must be a string, got {style!r}", code="invalid_style")
        n = self.integer(obj, "n", self.defaults.n, "invalid_n")
        seed = self.integer(obj, "seed", None, "invalid_seed")
        steps = self.integer(obj, "steps", self.defaults.steps, "invalid_steps")
        width, height = self.size(obj)
        prompts = tuple(  # normalised as the service and generate store them; coded errors
            GenerationSpec(prompt, n, seed, steps, width, height).checked(self.limits).prompt
            for prompt in prompts
        )
        return BatchItem(
            id=item_id,
            line=number,
            photos=photos,
            photo_key=f"identity:{identity_id}"
            if identity_id
            else hashlib.sha256("".join(self.hashes[p] for p in photos).encode()).hexdigest(),
            prompts=prompts,
            style=style,
            n=n,
            seed=seed,
            width=width,
            height=height,
            steps=steps,
            identity_id=identity_id,
        )

    def prompts(self, obj: dict[str, Any]) -> tuple[str, ...]:
        if "prompt" in obj and "prompts" in obj:
            raise LineError("give prompt or prompts, not both")
        if "prompt" in obj:
            prompts = [obj["prompt"]]
        elif "prompts" in obj:
            prompts = obj["prompts"]
            if not isinstance(prompts, list) or not prompts:
                raise LineError(
                    "prompts must be a non-empty list of strings", code="invalid_prompt"
                )
        else:
            raise LineError(
                "each line needs a prompt (or a list of prompts)", code="missing_prompt"
            )
        if not all(isinstance(p, str) and p.strip() for p in prompts):
            raise LineError("every prompt must be a non-empty string", code="invalid_prompt")
        return tuple(prompts)

    def identity(self, obj: dict[str, Any]) -> str | None:
        if "identity_id" not in obj:
            return None
        if "photos" in obj:
            raise LineError("give photos or identity_id, not both")
        if not self.service:
            raise LineError(
                "identity_id refers to an identity enrolled in a running service: run with "
                "--server, or give photos",
                code="needs_server",
            )
        value = obj["identity_id"]
        if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
            raise LineError(
                f"identity_id must be an id the service gave out, got {value!r}",
                code="invalid_identity_id",
            )
        return value

    def photos(self, obj: dict[str, Any]) -> tuple[Path, ...]:
        names = obj.get("photos")
        if names is None:
            raise LineError("each line needs photos (a list of paths)", code="missing_photos")
        if (
            not isinstance(names, list)
            or not names
            or not all(isinstance(p, str) and p for p in names)
        ):
            raise LineError("photos must be a non-empty list of paths", code="invalid_photos")
        if len(names) > self.max_photos:
            raise LineError(
                f"{len(names)} photos; at most {self.max_photos} are used", code="too_many_photos"
            )
        paths = tuple((self.base / name).resolve() for name in names)
        for name, path in zip(names, paths, strict=True):
            if path not in self.hashes:
                if not path.is_file():
                    raise LineError(f"photo {name}: no such file ({path})", code="file_not_found")
                self.hashes[path] = hashlib.sha256(path.read_bytes()).hexdigest()
        return paths

    @staticmethod
    def integer(obj: dict[str, Any], name: str, default: int | None, code: str) -> Any:
        value = obj.get(name, default)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidArgument(f"{name} must be an integer, got {value!r}", code=code)
        return value

    def size(self, obj: dict[str, Any]) -> tuple[int, int]:
        if "size" not in obj:
            return self.defaults.width, self.defaults.height
        if not isinstance(obj["size"], str):
            raise InvalidArgument(
                f'size must be a string like "1024x1024", got {obj["size"]!r}', code="invalid_size"
            )
        return parse_size(obj["size"], name="size")
