"""The visible label: short text on a translucent dark box in the bottom-right corner."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont


def draw_label(image: Image.Image, text: str) -> Image.Image:
    """A copy of ``image`` (RGB) with ``text`` in its bottom-right corner.

    The text height is 1/32 of the shorter side (at least 10 px, less only
    where the text would not fit across), so the label reads the same on a
    thumbnail and a full-size download.
    """
    base = image.convert("RGBA")
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    size = max(10, min(base.size) // 32)
    while True:  # shrink until the label fits across the image (tiny images)
        font = ImageFont.load_default(size=size)
        pad, margin = max(1, size // 3), max(1, size // 2)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        if right - left + 2 * (pad + margin) <= base.width or size <= 6:
            break
        size -= 1
    x1, y1 = base.width - margin, base.height - margin
    x0, y0 = x1 - (right - left) - 2 * pad, y1 - (bottom - top) - 2 * pad
    draw.rectangle((x0, y0, x1, y1), fill=(0, 0, 0, 150))
    draw.text((x0 + pad - left, y0 + pad - top), text, font=font, fill=(255, 255, 255, 235))
    return Image.alpha_composite(base, overlay).convert("RGB")
