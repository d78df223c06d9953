"""Training captions: the trigger word first, prefix and suffix, append and prepend."""

from __future__ import annotations

import pytest

from beaver.captions.compose import compose, core_of, join


@pytest.mark.parametrize(
    ("raw", "kw", "expected"),
    [
        ("a woman smiling", {}, "a woman smiling"),
        ("a woman smiling", {"trigger": "emma"}, "emma, a woman smiling"),
        ("  a woman\n smiling ,", {"trigger": "emma"}, "emma, a woman smiling"),
        ("emma, a woman", {"trigger": "Emma"}, "Emma, a woman"),  # once, first
        ("Emma is smiling", {"trigger": "emma"}, "emma, Emma is smiling"),  # a word, not a part
        (
            "a woman",
            {"trigger": "emma", "prefix": "photo of", "suffix": "film grain"},
            "emma, photo of, a woman, film grain",
        ),
        ("", {"trigger": "emma"}, "emma"),
    ],
)
def test_compose(raw: str, kw: dict[str, str], expected: str) -> None:
    assert compose(raw, **kw) == expected  # type: ignore[arg-type]


def test_append_and_prepend_keep_the_old_text_and_add_only_new_parts() -> None:
    old = "emma, photo, blue eyes, smile, end"
    kw = {"trigger": "emma", "prefix": "photo", "suffix": "end"}
    assert compose("red hair, smile", mode="append", existing=old, **kw) == (
        "emma, photo, blue eyes, smile, red hair, end"
    )
    assert compose("red hair, smile", mode="prepend", existing=old, **kw) == (
        "emma, photo, red hair, smile, blue eyes, end"
    )
    # Overwrite (and skip, for a changed image) ignore the old caption.
    assert compose("red hair", mode="overwrite", existing=old, **kw) == "emma, photo, red hair, end"


def test_core_of_and_join() -> None:
    assert core_of("emma, photo, a woman, end", trigger="emma", prefix="photo", suffix="end") == (
        "a woman"
    )
    assert join("", " a ", "b,", ",c") == "a, b, c"
