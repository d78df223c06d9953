"""Concept taxonomies: the JSON file that says which words in a caption mean which concept.

Two forms, mixable per category (docs/concepts.md, docs/schemas/taxonomy.schema.json)::

    {"costume_elements": ["wig", "prop weapon"]}                  # simple: term = concept
    {"expression": {"smiling": ["smile", "grin", "laughing"]}}     # rich: concept → synonyms

A simple-form term becomes the concept id of its words joined by ``_`` ("prop weapon" →
``prop_weapon``); in the rich form the concept id (``_`` read as a space) is a term too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, RootModel

from beaver.errors import InputError

DEFAULT_TAXONOMY = "default_taxonomy.json"
NAME_PATTERN = r"^[a-z0-9][a-z0-9_]*$"
_NAME = re.compile(NAME_PATTERN)
# Words, tag ids like "1girl", contractions ("isn't"); punctuation is kept as clause breaks.
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)*|[.,;:!?()\[\]{}|/\n]")
ARTICLES = frozenset({"a", "an", "the"})
PUNCTUATION = frozenset(".,;:!?()[]{}|/\n")

Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Term = Annotated[str, Field(min_length=1)]


class TaxonomyFile(RootModel[dict[Name, list[Term] | dict[Name, list[Term]]]]):
    """A taxonomy file: category → terms (simple form) or category → concept → synonyms."""


def taxonomy_schema() -> dict[str, Any]:
    """JSON Schema of a taxonomy file."""
    schema = TaxonomyFile.model_json_schema()
    schema["title"] = "Taxonomy"
    schema["description"] = (
        "Category → list of terms (each term is its own concept), or category → "
        "{concept id: [synonyms]}. Categories pose, setting and lighting fill the single-valued "
        "fields of concepts.json, clothing its clothing list, all others its attributes."
    )
    schema["minProperties"] = 1
    # Keys must match the name pattern: pydantic only lists them under patternProperties.
    schema["additionalProperties"] = False
    for form in schema["patternProperties"][NAME_PATTERN]["anyOf"]:
        if form["type"] == "object":
            form["additionalProperties"] = False
    return schema


def words(text: str) -> list[str]:
    """Lowercase tokens of ``text``: ``_`` and ``-`` split words, articles are dropped."""
    text = text.lower().replace("\u2019", "'").replace("_", " ")
    return [t for t in _TOKEN.findall(text) if t not in ARTICLES]


@dataclass(frozen=True)
class Concept:
    """One concept: its id, category and the terms (phrases) that name it, id first."""

    id: str
    category: str
    terms: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Taxonomy:
    """A validated taxonomy; ``concepts`` keep the file's order, category by category."""

    source: str
    categories: tuple[str, ...]
    concepts: tuple[Concept, ...]

    def category(self, name: str) -> tuple[Concept, ...]:
        """The concepts of one category, in file order."""
        return tuple(c for c in self.concepts if c.category == name)


def load_taxonomy(path: Path | None = None) -> Taxonomy:
    """The taxonomy in ``path``, or the packaged default; raises InputError on a bad file."""
    if path is None:
        text = resources.files("beaver.prep").joinpath(DEFAULT_TAXONOMY).read_text("utf-8")
        return parse_taxonomy(json.loads(text), source="default taxonomy")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(
            path,
            "no such taxonomy file",
            hint="Fix the path, or leave out --taxonomy to use the default.",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InputError(path, f"cannot read the taxonomy ({why})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            path,
            f"taxonomy is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            hint="Fix the file; see docs/concepts.md for the format.",
        ) from None
    return parse_taxonomy(data, source=str(path))


def parse_taxonomy(data: object, *, source: str) -> Taxonomy:
    """Validate the parsed JSON of a taxonomy file; errors name ``source`` and the key at fault."""

    def fail(problem: str) -> InputError:
        return InputError(
            source, problem, hint="See docs/concepts.md for the taxonomy format, then fix it."
        )

    if not isinstance(data, dict):
        raise fail(f"a taxonomy is a JSON object of categories, not {_kind(data)}")
    if not data:
        raise fail('the taxonomy has no categories (expected e.g. {"setting": ["indoor"]})')
    concepts: list[Concept] = []
    owner: dict[str, str] = {}  # concept id → category
    term_owner: dict[tuple[str, ...], str] = {}  # term words → concept id
    for category, entries in data.items():
        if not _NAME.match(category):
            raise fail(f"category {category!r} is not a snake_case name (a-z, 0-9, _)")
        if isinstance(entries, list):
            pairs = [(_term_id(term, category, fail), [term]) for term in entries]
        elif isinstance(entries, dict):
            pairs = []
            for concept_id, synonyms in entries.items():
                if not _NAME.match(concept_id):
                    raise fail(
                        f"{category}: concept id {concept_id!r} is not a snake_case name "
                        "(a-z, 0-9, _)"
                    )
                if not isinstance(synonyms, list):
                    raise fail(
                        f"{category}.{concept_id}: expected a list of synonyms, "
                        f"not {_kind(synonyms)}"
                    )
                pairs.append((concept_id, [concept_id.replace("_", " "), *synonyms]))
        else:
            raise fail(
                f"{category}: expected a list of terms or an object of concept → synonyms, "
                f"not {_kind(entries)}"
            )
        if not pairs:
            raise fail(f"category {category!r} has no terms")
        for concept_id, terms in pairs:
            if owner.get(concept_id, category) != category:
                raise fail(
                    f"concept {concept_id!r} is in both {owner[concept_id]!r} and {category!r}; "
                    "a concept belongs to one category"
                )
            owner[concept_id] = category
            phrases: list[tuple[str, ...]] = []
            for term in terms:
                phrase = _phrase(term, f"{category}.{concept_id}", fail)
                other = term_owner.setdefault(phrase, concept_id)
                if other != concept_id:
                    raise fail(
                        f"term {' '.join(phrase)!r} names both {other!r} and {concept_id!r}; "
                        "give each term to one concept"
                    )
                if phrase not in phrases:
                    phrases.append(phrase)
            # A simple-form term listed twice adds no concept; merge into the first.
            for i, existing in enumerate(concepts):
                if existing.id == concept_id:
                    merged = existing.terms + tuple(p for p in phrases if p not in existing.terms)
                    concepts[i] = Concept(concept_id, category, merged)
                    break
            else:
                concepts.append(Concept(concept_id, category, tuple(phrases)))
    return Taxonomy(source=source, categories=tuple(data), concepts=tuple(concepts))


def _term_id(term: object, category: str, fail: Callable[[str], InputError]) -> str:
    return "_".join(_phrase(term, category, fail)).replace("'", "")


def _phrase(term: object, where: str, fail: Callable[[str], InputError]) -> tuple[str, ...]:
    if not isinstance(term, str):
        raise fail(f"{where}: terms are strings, not {_kind(term)}")
    phrase = words(term)
    if not phrase:
        raise fail(f"{where}: term {term!r} has no words")
    if any(w in PUNCTUATION for w in phrase):
        raise fail(f"{where}: term {term!r} contains punctuation; use one term per phrase")
    return tuple(phrase)


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    if value is None:
        return "null"
    return "a number" if isinstance(value, int | float) else type(value).__name__
