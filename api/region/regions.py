"""ISO 3166 region codes: validation and the chain a policy is matched against.

A region is an ISO 3166-1 alpha-2 country (``US``) or an ISO 3166-2
subdivision (``US-IL``, ``FR-75C``). Codes are checked against pycountry's
ISO tables, so a typo such as ``US-XX`` is refused instead of slipping past
every subdivision rule.
"""

from __future__ import annotations

import functools

import pycountry

from api.errors import InvalidRegion

EVERYWHERE = "*"  # the policy's catch-all rule


@functools.lru_cache(maxsize=4096)
def parse_region(text: str) -> str:
    """The canonical upper-case code of ``text`` (``"us-ca"`` → ``"US-CA"``), or InvalidRegion."""
    code = text.strip().upper()
    if "-" in code:
        if pycountry.subdivisions.get(code=code) is None:
            raise InvalidRegion(f"{text!r} is not an ISO 3166-2 subdivision code (e.g. US-CA)")
    elif len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
        raise InvalidRegion(f"{text!r} is not an ISO 3166-1 alpha-2 country code (e.g. US)")
    return code


def country_of(code: str) -> str:
    return code.split("-", 1)[0]


def subdivision_of(code: str) -> str | None:
    return code if "-" in code else None


@functools.lru_cache(maxsize=4096)
def chain(code: str) -> tuple[str, ...]:
    """``code``, its parent subdivisions, its country and ``*``: most specific first.

    ``FR-75C`` → ``("FR-75C", "FR-IDF", "FR", "*")``; ``US`` → ``("US", "*")``.
    A subdivision unknown to the ISO tables (a geo database may be newer) keeps
    only itself and its country.
    """
    out = [code]
    parent = code
    while "-" in parent:
        sub = pycountry.subdivisions.get(code=parent)
        parent = getattr(sub, "parent_code", None) or country_of(code)
        out.append(parent)
    out.append(EVERYWHERE)
    return tuple(out)
