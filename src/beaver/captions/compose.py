"""Turn a captioner's text into the training caption: trigger word first, prefix, suffix, modes.

Parts are joined with ", " (the separator sd-scripts' tag shuffling and keep-tokens
count on). The trigger word is always the first part and appears there once; prefix and
suffix frame the captioner's text. In ``append``/``prepend`` mode the earlier caption's own
text (without its trigger, prefix and suffix) is kept after/before the new text, and parts
that both contain are written once, so re-running a tagger in append mode adds only
new tags.
"""

from __future__ import annotations

import re

from beaver.captions.schema import Mode

SEPARATOR = ", "


def compose(
    raw: str,
    *,
    mode: Mode = "overwrite",
    existing: str | None = None,
    trigger: str | None = None,
    prefix: str = "",
    suffix: str = "",
) -> str:
    """The caption to write for an image whose captioner returned ``raw``."""
    new = _clean(raw)
    if trigger:
        new = _drop_leading(new, trigger)
    if existing is not None and mode in ("append", "prepend"):
        old = core_of(existing, trigger=trigger, prefix=prefix, suffix=suffix)
        new = _merge(old, new) if mode == "append" else _merge(new, old)
    return join(trigger or "", prefix, new, suffix)


def core_of(caption: str, *, trigger: str | None, prefix: str, suffix: str) -> str:
    """``caption`` without the trigger word, prefix and suffix that :func:`compose` added."""
    text = _clean(caption)
    if trigger:
        text = _drop_leading(text, trigger)
    if prefix and _clean(prefix):
        text = _drop_leading(text, _clean(prefix))
    if suffix and _clean(suffix):
        tail = _clean(suffix)
        if text.lower().endswith(tail.lower()):
            text = _clean(text[: -len(tail)])
    return text


def join(*parts: str) -> str:
    """Non-empty parts, cleaned, joined with ", "."""
    return SEPARATOR.join(p for p in (_clean(part) for part in parts) if p)


def _merge(first: str, second: str) -> str:
    """``first`` then the comma-separated parts of ``second`` that ``first`` lacks."""
    if not first:
        return second
    have = {p.strip().lower() for p in first.split(",")}
    extra = [p for p in (q.strip() for q in second.split(",")) if p and p.lower() not in have]
    return join(first, *extra)


def _drop_leading(text: str, part: str) -> str:
    """``text`` without a leading comma-separated ``part`` (case-insensitive).

    Only a whole part goes: "emma, smiling" loses "emma"; "Emma is smiling" is left alone.
    """
    pattern = re.compile(rf"^\s*{re.escape(part.strip())}\s*(?:,|$)\s*", re.IGNORECASE)
    return pattern.sub("", text, count=1)


def _clean(text: str) -> str:
    """One line, single spaces, no separators at either end."""
    flat = " ".join(text.split())
    return flat.strip(" ,;")
