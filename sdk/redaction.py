"""Blanking secret values out of text: which values, in which spellings, and where they start and end.

Every secret resolved or wrapped in this process is remembered here, together with the forms
it takes when it travels: URL-encoded (in a DSN or a query string), JSON-escaped (in a logged
payload), ``repr``-escaped (in a traceback) and base64 (alone, or as ``user:password`` in an HTTP
Basic ``Authorization`` header). :func:`redact` replaces each occurrence of any of them with
``<SECRET>``.

A value is replaced only where it stands whole: not when it is a piece of a longer word. With
the password ``snow`` the text ``snowflake``, ``snow_stage`` or ``/data/snow.duckdb`` is left
alone, while ``user:snow@host``, ``password=snow;`` or ``"snow"`` are masked. Letters, digits and
``_`` make up words; a ``.`` or ``-`` between two word characters joins them too (file names,
host names, hyphenated words). For secrets under eight characters, which are likely to be
ordinary words, ``/`` and a backslash join as well, so a folder named like a short password stays
readable; longer secrets (tokens) are masked even as a component of a URL path. Values shorter
than four characters are not remembered at all: whole-word matches of them would blank out
ordinary text.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "MIN_LENGTH", "forms", "redact", "register_pair", "register_secret"]

#: What redaction writes in place of a secret.
MASK = "<SECRET>"
#: Values shorter than this are not remembered for redaction.
MIN_LENGTH = 4

#: Secrets shorter than this are also taken as part of a path when joined to one by '/' or '\\'.
SHORT = 8

_WORD = "A-Za-z0-9_"


def _edges(joiners: str) -> tuple[str, str]:
    """Lookarounds for "not inside a word": no word character next to it, nor one joined by ``joiners``."""
    return (f"(?<![{_WORD}])(?<![{_WORD}][{joiners}])", f"(?![{_WORD}])(?![{joiners}][{_WORD}])")


_LONG_EDGES = _edges(r".\-")
_SHORT_EDGES = _edges(r".\-/\\")

_lock = threading.Lock()
_known: set[str] = set()
_pattern: re.Pattern[str] | None = None


def _base64(raw: bytes) -> set[str]:
    standard = base64.b64encode(raw).decode("ascii")
    urlsafe = base64.urlsafe_b64encode(raw).decode("ascii")
    return {standard, urlsafe, standard.rstrip("="), urlsafe.rstrip("=")}


def forms(value: str) -> set[str]:
    """The spellings of ``value`` that :func:`redact` masks: as is, URL-encoded, escaped, base64."""
    out = {
        value,
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
    }
    out |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), form) for form in out if "%" in form}
    out |= _base64(value.encode("utf-8"))
    return {form for form in out if len(form) >= MIN_LENGTH}


def _add(new: set[str]) -> None:
    global _pattern
    with _lock:
        if not new <= _known:
            _known.update(new)
            _pattern = None


def register_secret(value: str) -> None:
    """Remember ``value`` (and its encoded forms) so that :func:`redact` hides it from now on.

    Values under :data:`MIN_LENGTH` characters are ignored.
    """
    if isinstance(value, str) and len(value) >= MIN_LENGTH:
        _add(forms(value))


def register_pair(user: str, password: str) -> None:
    """Remember the HTTP Basic credentials of ``user`` and ``password`` (base64 of ``user:password``)."""
    if isinstance(user, str) and isinstance(password, str) and len(password) >= MIN_LENGTH:
        _add(_base64(f"{user}:{password}".encode()))


def _piece(form: str) -> str:
    before, after = _SHORT_EDGES if len(form) < SHORT else _LONG_EDGES
    start = before if re.match(f"[{_WORD}]", form[0]) else ""
    end = after if re.match(f"[{_WORD}]", form[-1]) else ""
    return f"{start}{re.escape(form)}{end}"


def _secret_pattern() -> re.Pattern[str] | None:
    global _pattern
    with _lock:
        if _pattern is None and _known:
            # Longest first, so a secret containing another is replaced whole.
            ordered = sorted(_known, key=lambda form: (-len(form), form))
            _pattern = re.compile("|".join(_piece(form) for form in ordered))
        return _pattern


def redact(text: str) -> str:
    """Return ``text`` with every whole occurrence of a remembered secret replaced by ``<SECRET>``."""
    pattern = _secret_pattern()
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)
