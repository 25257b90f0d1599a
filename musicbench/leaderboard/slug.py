"""File names for untrusted run and method names: `safe_slug`, and `inside` to keep paths in their folder."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

from musicbench.fsutil import resolve_in_root


def safe_slug(text: str, taken: set[str] | None = None, max_length: int = 48) -> str:
    """A file-name-safe, unique slug for an untrusted name: ASCII letters, digits, ``-``, ``_``.

    Any other character becomes ``-``; a name that changed (or is empty, or is already `taken`,
    compared case-insensitively) gets ``-`` + 8 hex digits of its SHA-256. The slug is added to
    `taken`. It never contains a path separator, never starts with ``.`` or ``-``.
    """
    taken = set() if taken is None else taken
    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", ascii_text).strip("-_")[:max_length].strip("-_")
    digest = hashlib.sha256(str(text).encode("utf-8", "surrogatepass")).hexdigest()
    if not slug or slug != text or slug.lower() in {t.lower() for t in taken}:
        slug = f"{slug or 'run'}-{digest[:8]}"
        n = 8
        while slug.lower() in {t.lower() for t in taken}:
            n += 2
            slug = f"{slug.rsplit('-', 1)[0]}-{digest[:n]}"
    taken.add(slug)
    return slug


def inside(base: Path, *parts: str) -> Path:
    """``base / parts`` after checking that it stays inside `base` (parts are slugs, but check anyway)."""
    return resolve_in_root(base, Path(*parts))
