"""Concepts from captions: whole-word phrase matching with inflections and negation.

How it matches (docs/concepts.md has the user's version):

- Captions and terms are split into lowercase words; ``_`` and ``-`` split words (booru tags
  such as ``long_hair``), articles are dropped, punctuation ends a clause.
- Each term word also matches its inflections (:func:`inflections`): plurals, and for words
  that can be verbs -s/-ed/-ing with e-dropping and consonant doubling (smile, smiles, smiled,
  smiling; sit, sits, sat, sitting). ``glasses``, ``shorts`` and the like stay as they are.
- At each word the longest matching term wins and its words are used up. A phrase may also
  skip one or two words before its last word ("long blonde hair" is long_hair and
  blonde_hair), unless a skipped word starts a match of the same category ("dark brown hair"
  is brown_hair only).
- A negator (not, no, without, never, n't, nor, lacking, free of, …) negates the next match
  within three words of the same clause; "and", "but", "with", "while" and punctuation end
  its reach, and so does the first match, unless "or"/"nor" follows it ("no hat or glasses").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from beaver.prep.taxonomy import PUNCTUATION, Taxonomy, words


def _set(text: str) -> frozenset[str]:
    return frozenset(text.split())


SINGLE_VALUED = ("pose", "setting", "lighting")
LIST_FIELDS = ("clothing",)

# Words whose final s is not a plural, and plurals that name another thing than the singular.
INVARIANT = _set(
    "glasses sunglasses eyeglasses goggles shorts pants jeans trousers leggings tights "
    "clothes overalls pajamas pyjamas bangs is his this was has its us plus always"
)
# Nouns whose verb forms mean something else ("dressed in", "hair tied back", "watching").
NOUN_ONLY = _set("dress suit top cap coat tie watch")
# Nouns that end in -ing; not verbs to take apart ("earring" is not "ear").
ING_NOUNS = _set(
    "earring ring string clothing building ceiling evening morning wedding stocking "
    "sling swing spring king thing wing nothing something anything bling"
)
IRREGULAR = {
    "sit": ("sat",),
    "stand": ("stood",),
    "lie": ("lay", "lain", "lying"),
    "wear": ("wore", "worn"),
    "hold": ("held",),
    "kneel": ("knelt",),
    "lean": ("leant",),
    "run": ("ran",),
    "light": ("lit",),
}
_IRREGULAR_LEMMA = {form: lemma for lemma, forms in IRREGULAR.items() for form in forms}

NEGATORS = _set("not no without never nor neither none lacking lacks lack cannot nothing")
# Words that end a negation's reach: clause joints.
BOUNDARIES = (
    _set("and but with while although though yet whereas except however plus") | PUNCTUATION
)
# Words that do not count toward a negation's reach ("not wearing any glasses").
FILLERS = _set(
    "wearing wears wear have has having had is are was were be been being any his her "
    "their its my your pair of visible seen"
)
NEGATION_REACH = 3
MAX_GAP = 2
_VOWELS = _set("a e i o u")


class ImageConcepts(BaseModel):
    """The concepts of one image: an entry of concepts.json."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    raw_caption: str = Field(description="The caption the concepts were read from.")
    concepts: list[str] = Field(
        default_factory=list, description="Every concept found, in caption order, once each."
    )
    pose: str | None = Field(None, description="The pose: first of the taxonomy's pose order.")
    setting: str | None = Field(None, description="The setting: first in taxonomy order.")
    lighting: str | None = Field(None, description="The lighting: first in taxonomy order.")
    clothing: list[str] = Field(default_factory=list, description="Clothing, in caption order.")
    attributes: list[str] = Field(
        default_factory=list,
        description="Concepts of every other category (expression, hair, glasses, …).",
    )


class TopConcept(BaseModel):
    """A concept's share of the dataset: an entry of metadata.json's top_concepts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    concept: str
    count: int = Field(ge=0, description="Images whose caption has the concept.")
    frequency: float = Field(ge=0, description="count / total images, to 2 decimals.")


def extract(caption: str, taxonomy: Taxonomy) -> ImageConcepts:
    """The concepts in one caption."""
    matcher = _matcher(taxonomy)
    found = matcher.find(words(caption))
    order = matcher.order
    by_category: dict[str, list[str]] = {}
    for concept_id in found:
        by_category.setdefault(matcher.category[concept_id], []).append(concept_id)

    def single(category: str) -> str | None:
        hits = by_category.get(category, [])
        return min(hits, key=order.__getitem__) if hits else None

    rest = set(SINGLE_VALUED) | set(LIST_FIELDS)
    return ImageConcepts(
        raw_caption=caption,
        concepts=found,
        pose=single("pose"),
        setting=single("setting"),
        lighting=single("lighting"),
        clothing=by_category.get("clothing", []),
        attributes=[c for c in found if matcher.category[c] not in rest],
    )


def top_concepts(
    per_image: Sequence[ImageConcepts], total_images: int, limit: int = 20
) -> list[TopConcept]:
    """The ``limit`` most common concepts: most images first, ties by name."""
    counts = Counter(c for image in per_image for c in set(image.concepts))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[: max(limit, 0)]
    return [
        TopConcept(
            concept=concept,
            count=count,
            frequency=round(count / total_images, 2) if total_images > 0 else 0.0,
        )
        for concept, count in ranked
    ]


def concepts_schema() -> dict[str, Any]:
    """JSON Schema of one concepts.json entry."""
    return ImageConcepts.model_json_schema()


def inflections(word: str) -> frozenset[str]:
    """``word`` and the forms it takes in captions (plural, -s/-ed/-ing)."""
    if word in INVARIANT:
        return frozenset({word})
    forms = {word}
    for lemma in _lemmas(word):
        forms |= _forms(lemma)
    return frozenset(f for f in forms if f == word or f not in INVARIANT)


def _lemmas(word: str) -> set[str]:
    if word in INVARIANT or len(word) <= 3 or not word.isalpha():
        return {word}
    if word in _IRREGULAR_LEMMA:
        return {_IRREGULAR_LEMMA[word]}
    if word.endswith("ing") and len(word) >= 6 and word not in ING_NOUNS:
        return _stem_candidates(word[:-3])
    if word.endswith("ied") and len(word) >= 5:
        return {word[:-3] + "y"}
    if word.endswith("ed") and len(word) >= 5:
        return _stem_candidates(word[:-2])
    if word.endswith("ies") and len(word) >= 5:
        return {word[:-3] + "y"}
    if word.endswith("es") and word[:-2].endswith(("s", "x", "z", "ch", "sh")):
        return {word[:-2]}
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return {word[:-1]}
    return {word}


def _stem_candidates(stem: str) -> set[str]:
    """What "smil", "sitt", "pos" were before -ing/-ed: the stem, +e, undoubled."""
    found = {stem, stem + "e"}
    if len(stem) >= 3 and stem[-1] == stem[-2] and stem[-1] not in "lszaeiou":
        found.add(stem[:-1])
    return found


def _forms(lemma: str) -> set[str]:
    sibilant = lemma.endswith(("s", "x", "z", "ch", "sh"))
    forms = {lemma, lemma + ("es" if sibilant else "s")}
    consonant_y = lemma.endswith("y") and len(lemma) > 1 and lemma[-2] not in _VOWELS
    if consonant_y:
        forms.add(lemma[:-1] + "ies")
    if lemma in NOUN_ONLY or not lemma.isalpha():
        return forms
    if lemma.endswith("ie"):
        forms |= {lemma + "d", lemma[:-2] + "ying"}
    elif lemma.endswith("e") and not lemma.endswith("ee"):
        forms |= {lemma + "d", lemma[:-1] + "ing"}
    elif consonant_y:
        forms |= {lemma[:-1] + "ied", lemma + "ing"}
    else:
        forms |= {lemma + "ed", lemma + "ing"}
        if _short_cvc(lemma):
            forms |= {lemma + lemma[-1] + "ed", lemma + lemma[-1] + "ing"}
    forms.update(IRREGULAR.get(lemma, ()))
    return forms


def _short_cvc(lemma: str) -> bool:
    """sit → sitting, run → running: one syllable ending consonant-vowel-consonant."""
    return (
        len(lemma) <= 4
        and len(lemma) >= 3
        and lemma[-1] not in _VOWELS | set("wxy")
        and lemma[-2] in _VOWELS
        and lemma[-3] not in _VOWELS
    )


@dataclass(frozen=True)
class _Phrase:
    words: tuple[frozenset[str], ...]
    concept: str
    rank: int  # position in the taxonomy: earlier wins a tie


class _Matcher:
    """A taxonomy compiled for matching: first word form → candidate phrases, longest first."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.category = {c.id: c.category for c in taxonomy.concepts}
        self.order = {c.id: i for i, c in enumerate(taxonomy.concepts)}
        index: dict[str, list[_Phrase]] = {}
        rank = 0
        for concept in taxonomy.concepts:
            for term in concept.terms:
                phrase = _Phrase(tuple(inflections(w) for w in term), concept.id, rank)
                rank += 1
                for form in phrase.words[0]:
                    index.setdefault(form, []).append(phrase)
        for candidates in index.values():
            candidates.sort(key=lambda p: (-len(p.words), p.rank))
        self.index = index

    def find(self, tokens: list[str]) -> list[str]:
        """Concept ids in caption order, once each, leaving out negated mentions."""
        found: dict[str, None] = {}
        reach: int | None = None  # words a pending negation still covers
        carry = False  # the last match was negated: "or"/"nor" extends the negation
        i = 0
        while i < len(tokens):
            token = tokens[i]
            match = self._match_at(tokens, i)
            if match is not None:
                concept, end, gapped = match
                if reach is None:
                    found.setdefault(concept, None)
                if gapped:  # its skipped words come next and may be matches themselves
                    i += 1
                    continue
                carry, reach = reach is not None, None
                i = end
                continue
            if token in BOUNDARIES:
                reach, carry = None, False
            elif (token in ("or", "nor") and carry) or _negates(tokens, i):
                reach, carry = NEGATION_REACH, False
            elif reach is not None and token not in FILLERS:
                reach = reach - 1 if reach > 0 else None
            i += 1
        return list(found)

    def _match_at(self, tokens: list[str], i: int) -> tuple[str, int, bool] | None:
        candidates = self.index.get(tokens[i])
        if not candidates:
            return None
        for phrase in candidates:  # longest first: contiguous
            n = len(phrase.words)
            if i + n <= len(tokens) and all(tokens[i + k] in phrase.words[k] for k in range(1, n)):
                return phrase.concept, i + n, False
        for phrase in candidates:  # then with words skipped before the last word
            gap_end = self._gapped_end(tokens, i, phrase)
            if gap_end is not None:
                return phrase.concept, gap_end, True
        return None

    def _gapped_end(self, tokens: list[str], i: int, phrase: _Phrase) -> int | None:
        """End of ``phrase`` at ``i`` with one or two words skipped before its last word."""
        n = len(phrase.words)
        head = i + n - 1  # where the last word would be without a gap
        if n < 2 or head >= len(tokens):
            return None
        if not all(tokens[i + k] in phrase.words[k] for k in range(1, n - 1)):
            return None
        for last in range(head + 1, min(head + MAX_GAP, len(tokens) - 1) + 1):
            if tokens[last - 1] in BOUNDARIES or _negates(tokens, last - 1):
                return None
            if tokens[last] in phrase.words[-1]:
                category = self.category[phrase.concept]
                for k in range(head, last):
                    other = self._match_at(tokens, k)
                    if other and other[1] == last + 1 and self.category[other[0]] == category:
                        return None
                return last + 1
        return None


def _negates(tokens: list[str], i: int) -> bool:
    token = tokens[i]
    if token in NEGATORS or token.endswith("n't"):
        return True
    return token == "free" and i + 1 < len(tokens) and tokens[i + 1] == "of"


@lru_cache(maxsize=8)
def _matcher(taxonomy: Taxonomy) -> _Matcher:
    return _Matcher(taxonomy)


def extract_all(captions: Iterable[str], taxonomy: Taxonomy) -> list[ImageConcepts]:
    """:func:`extract` for many captions."""
    return [extract(caption, taxonomy) for caption in captions]
