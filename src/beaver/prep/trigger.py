"""The trigger word: derived from the name, checked so every caption can start with it."""

from __future__ import annotations

import re
import unicodedata

from beaver.errors import UsageError

GENERIC = frozenset(
    {"woman", "man", "person", "girl", "boy", "photo", "people", "face", "portrait", "lady"}
)
"""Words a base model already knows well: a LoRA trained on them shifts every person."""
_VALID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


def trigger_from_name(name: str) -> str:
    """``"Emma Watson"`` → ``"emma_watson"``: lower case ASCII, other characters as ``_``."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", folded.lower()).strip("_")


def check_trigger(trigger: str | None, name: str) -> tuple[str, list[str]]:
    """The trigger to use (given or derived) and warnings about it; UsageError if unusable."""
    word = (trigger if trigger is not None else trigger_from_name(name)).strip()
    if not word:
        raise UsageError(
            f"--name {name!r} gives no trigger word (no letters or digits beaver can use).",
            hint="Pass one with --trigger, e.g. --trigger emma.",
        )
    if not _VALID.match(word):
        raise UsageError(
            f"--trigger {word!r}: use 1-40 lower-case letters, digits, '_' or '-', "
            "starting with a letter or digit (it starts every caption, before a comma).",
            hint="For example --trigger emma or --trigger ewatson.",
        )
    warnings = []
    if word in GENERIC:
        warnings.append(
            f"The trigger word {word!r} is a common word the base model already knows; "
            "a rarer one (such as initials plus a name) trains a cleaner LoRA."
        )
    return word, warnings
