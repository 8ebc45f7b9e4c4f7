"""XMP metadata: the IPTC digital source type and the generator, nothing about people.

The packet names the generator (``xmp:CreatorTool``, IPTC ``AISystemUsed`` and
``AISystemVersionUsed``) and says the image is ``trainedAlgorithmicMedia``.
No prompt, no user, no generation id: those may identify a person.
Reading does not parse XML (uploaded files are untrusted): the few values we
report are picked out of the packet with bounded regular expressions.
"""

from __future__ import annotations

import io
import re
from xml.sax.saxutils import quoteattr

from PIL import Image, PngImagePlugin

from imagine.provenance.config import TRAINED_ALGORITHMIC_MEDIA, ProvenanceConfig

PNG_XMP_KEY = "XML:com.adobe.xmp"
MAX_XMP_BYTES = 64 * 1024  # fits one JPEG APP1 segment


def xmp_packet(config: ProvenanceConfig) -> bytes:
    tool = f"{config.generator} {config.generator_version}"
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about=""'
        ' xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
        ' xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"'
        f" Iptc4xmpExt:DigitalSourceType={quoteattr(TRAINED_ALGORITHMIC_MEDIA)}"
        f" Iptc4xmpExt:AISystemUsed={quoteattr(config.generator)}"
        f" Iptc4xmpExt:AISystemVersionUsed={quoteattr(config.generator_version)}"
        f" xmp:CreatorTool={quoteattr(tool)}/>"
        "</rdf:RDF></x:xmpmeta>"
        '<?xpacket end="r"?>'
    ).encode()


def encode(image: Image.Image, fmt: str, xmp: bytes, quality: int) -> bytes:
    """``image`` as PNG, JPEG or WebP bytes carrying ``xmp`` and no other metadata."""
    buf = io.BytesIO()
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_itxt(PNG_XMP_KEY, xmp.decode(), zip=False)
        image.save(buf, "PNG", pnginfo=info)
    elif fmt == "JPEG":
        image.save(buf, "JPEG", xmp=xmp, quality=quality)
    elif fmt == "WEBP":
        image.save(buf, "WEBP", xmp=xmp, quality=quality)
    else:
        raise ValueError(f"fmt must be 'PNG', 'JPEG' or 'WEBP', got {fmt!r}")
    return buf.getvalue()


def read_xmp(image: Image.Image) -> bytes | None:
    """The XMP packet of an opened PNG, JPEG or WebP, if any."""
    xmp = image.info.get("xmp") or image.info.get(PNG_XMP_KEY)
    if isinstance(xmp, str):
        xmp = xmp.encode()
    return xmp[:MAX_XMP_BYTES] if xmp else None


def xmp_value(xmp: bytes, prop: str) -> str | None:
    """The value of ``prop`` (e.g. ``Iptc4xmpExt:DigitalSourceType``) as an attribute,
    a simple element, or an ``rdf:resource``; None when absent."""
    name = re.escape(prop.encode())
    for pattern in (
        rb"\b" + name + rb"""\s*=\s*["']([^"'<>]{1,512})["']""",
        rb"<" + name + rb"\s*>\s*([^<]{1,512}?)\s*</" + name + rb">",
        rb"<" + name + rb"""\s+rdf:resource\s*=\s*["']([^"'<>]{1,512})["']""",
    ):
        match = re.search(pattern, xmp)
        if match:
            return match.group(1).decode("utf-8", "replace")
    return None
