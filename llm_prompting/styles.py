"""Named style presets: how a scene is framed, the details added, what to avoid.

Every backend applies the same preset: the template expander pastes it around
the user's words, the LLM backends are told it and then get the same frame.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_prompting.errors import UnknownStyle

# Always avoided: a second face competes with the user's for the face adapter.
BASE_NEGATIVE = (
    "multiple people",
    "extra faces",
    "deformed face",
    "distorted features",
    "blurry",
    "low quality",
    "watermark",
    "text",
    "nsfw",
)


@dataclass(frozen=True)
class Style:
    name: str
    description: str  # one line for people and for the LLM's instructions
    lead: str  # put before the scene: "photo of"
    details: tuple[str, ...]  # added after the scene, most important first, while the budget allows
    negative: tuple[str, ...] = ()

    def negative_prompt(self, extra: tuple[str, ...] = ()) -> str:
        terms = dict.fromkeys((*BASE_NEGATIVE, *self.negative, *extra))
        return ", ".join(terms)


STYLES: dict[str, Style] = {
    s.name: s
    for s in (
        Style(
            "photo",
            "a natural, realistic photograph",
            "photo of",
            ("natural light", "sharp focus", "85mm lens", "detailed skin texture", "realistic"),
            ("cartoon", "painting", "illustration", "3d render"),
        ),
        Style(
            "cinematic",
            "a still from a film: dramatic light, shallow depth of field, colour grading",
            "cinematic film still of",
            ("dramatic lighting", "shallow depth of field", "anamorphic lens", "film grain"),
            ("cartoon", "flat lighting", "amateur snapshot"),
        ),
        Style(
            "portrait",
            "a studio portrait, head and shoulders",
            "studio portrait of",
            ("soft studio lighting", "head and shoulders", "neutral backdrop", "sharp focus"),
            ("cartoon", "full body", "wide shot"),
        ),
        Style(
            "watercolor",
            "a loose watercolour painting on paper",
            "watercolor painting of",
            ("soft washes", "visible paper texture", "loose brushstrokes", "pastel palette"),
            ("photo", "photorealistic", "3d render"),
        ),
        Style(
            "oil_painting",
            "a classical oil painting on canvas",
            "oil painting of",
            ("visible brushstrokes", "rich colours", "canvas texture", "classical composition"),
            ("photo", "3d render", "flat colours"),
        ),
        Style(
            "anime",
            "a Japanese anime illustration",
            "anime illustration of",
            ("clean line art", "cel shading", "vibrant colours", "detailed background"),
            ("photo", "photorealistic", "western cartoon"),
        ),
        Style(
            "comic",
            "a comic book panel with ink lines and halftone",
            "comic book panel of",
            ("bold ink outlines", "halftone shading", "dynamic composition", "flat colours"),
            ("photo", "photorealistic", "blurry lines"),
        ),
        Style(
            "3d_render",
            "a stylised 3D animated character render",
            "3d render of",
            ("stylised character", "soft global illumination", "subsurface scattering"),
            ("photo", "flat", "sketch"),
        ),
        Style(
            "pencil_sketch",
            "a graphite pencil sketch",
            "pencil sketch of",
            ("graphite on paper", "fine hatching", "monochrome", "loose lines"),
            ("colour", "photo", "3d render"),
        ),
        Style(
            "fantasy",
            "epic fantasy concept art",
            "fantasy concept art of",
            ("epic scale", "magical atmosphere", "intricate details", "volumetric light"),
            ("photo of a street", "modern clothing"),
        ),
        Style(
            "vintage",
            "a faded film photograph from decades ago",
            "vintage film photo of",
            ("faded colours", "film grain", "soft focus", "period details"),
            ("digital look", "modern objects"),
        ),
    )
}


def get_style(name: str | None, default: str = "photo") -> Style:
    """The preset called ``name`` (``default`` when None); unknown names are a user error."""
    name = name or default
    if name not in STYLES:
        raise UnknownStyle(f"unknown style {name!r}; choose one of {', '.join(sorted(STYLES))}")
    return STYLES[name]
