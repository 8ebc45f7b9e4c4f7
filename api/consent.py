"""The consent text users accept before enrollment, and its version.

The version is a name plus a hash of the text, so any edit to the text makes
a new version and old consents keep pointing at what was actually shown.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

NAME = "consent-2026-11"
PURPOSE = "generate images of you from your face, at your request"

TEXT = """\
Imagine Me creates images that look like you. To do that we process biometric
data: a face embedding, a list of numbers computed from the face in your photos.

What we store: the face embedding (encrypted), quality figures of each photo
(face size, sharpness, head pose), your declared residence, this consent and
the images you generate. We do not keep the photos you upload: they are
analysed in memory and discarded.

Why: only to generate images of you when you ask. We never sell the embedding,
use it to identify you elsewhere, or share it with anyone.

For how long: until you delete it, and at most {retention_days} days after you
last used it; then it is erased automatically with everything made from it.

How to delete it: "Delete my face data" in the gallery, or
DELETE /v1/identities/{{id}} in the API, erases the embedding and every image
made from it at once. Viewing and deleting your data works from anywhere.
"""


@dataclass(frozen=True)
class ConsentText:
    text: str
    version: str
    sha256: str
    purpose: str
    retention_days: int


def consent_text(retention_days: int) -> ConsentText:
    text = TEXT.format(retention_days=retention_days)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return ConsentText(
        text=text,
        version=f"{NAME}.{digest[:8]}",
        sha256=digest,
        purpose=PURPOSE,
        retention_days=retention_days,
    )
