"""Concept extraction: phrases, inflections, negation, the per-image fields, top_concepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from beaver.prep.concepts import ImageConcepts, extract, extract_all, inflections, top_concepts
from beaver.prep.taxonomy import Taxonomy, load_taxonomy, parse_taxonomy

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def default() -> Taxonomy:
    return load_taxonomy(None)


def found(caption: str, taxonomy: Taxonomy) -> list[str]:
    return extract(caption, taxonomy).concepts


@pytest.mark.parametrize(
    ("caption", "concepts"),
    [
        # BLIP-style sentences
        (
            "a woman with long blonde hair wearing a black dress standing in front of a building",
            ["long_hair", "blonde_hair", "dress", "standing", "outdoor"],
        ),
        (
            "a man with a beard and glasses sitting on a couch",
            ["beard", "glasses", "sitting", "indoor"],
        ),
        ("arafed woman in a red hat smiling at the camera", ["hat", "smiling"]),
        ("a close up of a woman with short brown hair", ["close_up", "short_hair", "brown_hair"]),
        # Florence-2-style paragraphs
        (
            (
                "The image shows a young woman with curly red hair and freckles. She is smiling and "
                "looking directly at the camera. She is wearing a denim jacket over a white t-shirt. "
                "The background is blurred, suggesting an outdoor setting with natural lighting."
            ),
            [
                "curly_hair",
                "red_hair",
                "freckles",
                "smiling",
                "frontal",
                "jacket",
                "t_shirt",
                "outdoor",
                "natural_light",
            ],
        ),
        (
            (
                "A portrait of a bearded man in a studio with dramatic lighting against a plain "
                "background."
            ),
            ["portrait", "beard", "studio", "dramatic_light"],
        ),
        # WD14 tag lists
        (
            "1girl, solo, long_hair, smile, looking_at_viewer, outdoors, blue_sky, brown_hair",
            ["long_hair", "smiling", "frontal", "outdoor", "brown_hair"],
        ),
        (
            "1boy, male_focus, facial_hair, beard, sunglasses, upper_body, simple_background",
            ["beard", "sunglasses", "upper_body", "studio"],
        ),
        (
            "1girl, ponytail, earrings, necklace, jeans",
            ["ponytail", "earrings", "necklace", "jeans"],
        ),
    ],
)
def test_captions(default: Taxonomy, caption: str, concepts: list[str]) -> None:
    assert found(caption, default) == concepts


def test_seed_example_fields(default: Taxonomy) -> None:
    caption = "Portrait of a young woman with blonde hair, smiling, outdoors in natural light"
    assert extract(caption, default) == ImageConcepts(
        raw_caption=caption,
        concepts=["portrait", "blonde_hair", "smiling", "outdoor", "natural_light"],
        pose=None,
        setting="outdoor",
        lighting="natural_light",
        clothing=[],
        attributes=["portrait", "blonde_hair", "smiling"],
    )


def test_single_valued_fields_take_taxonomy_order(default: Taxonomy) -> None:
    image = extract("a woman looking at the camera, standing in a room, cityscape window", default)
    assert image.pose == "standing"  # body pose comes before gaze in the pose category
    assert image.setting == "indoor"  # indoor comes before outdoor
    assert image.concepts == ["frontal", "standing", "indoor", "outdoor"]


@pytest.mark.parametrize(
    ("caption", "concept"),
    [
        ("she smiles", "smiling"),
        ("she smiled", "smiling"),
        ("she is laughing", "smiling"),
        ("a man sits on a bench", "sitting"),
        ("a man sat on a bench", "sitting"),
        ("a woman lies on the grass", "lying"),
        ("a woman lay on the bed", "lying"),
        ("a woman with braids", "braid"),
        ("a blonde-haired woman", "blonde_hair"),
        ("two hats", "hat"),
        ("wearing dresses", "dress"),
        ("natural light", "natural_light"),
        ("under soft light", "soft_light"),
        ("a tattooed man", "tattoo"),
        ("a freckled face", "freckles"),
    ],
)
def test_inflections(default: Taxonomy, caption: str, concept: str) -> None:
    assert concept in found(caption, default)


def test_inflection_rules() -> None:
    assert {"smile", "smiles", "smiled", "smiling"} <= inflections("smiling")
    assert {"sit", "sits", "sat", "sitting"} <= inflections("sitting")
    assert inflections("glasses") == {"glasses"}
    assert "shorts" not in inflections("short")  # short hair is not shorts
    assert "ear" not in inflections("earring")
    assert "ears" not in inflections("earrings")
    assert "dressed" not in inflections("dress")  # "dressed in black" is not a dress
    assert "cap" not in inflections("cape")


@pytest.mark.parametrize(
    ("caption", "absent"),
    [
        ("a man standing near a hatstand, that is all", "hat"),  # no hat in "that"/"hatstand"
        ("a man standing in a tanning salon", "hat"),
        ("a glass of wine", "glasses"),  # glass is not glasses
        ("a woman in shorts", "short_hair"),
        ("sitting on top of a wall", "tank_top"),
        ("a woman dressed in black with her hair tied back", "dress"),
        ("a woman dressed in black with her hair tied back", "tie"),
        ("dark brown hair", "dark_hair"),  # the closer colour wins in its category
        ("light brown hair", "soft_light"),
        ("watching tv", "watch"),
    ],
)
def test_whole_words_only(default: Taxonomy, caption: str, absent: str) -> None:
    assert absent not in found(caption, default)


def test_longest_phrase_wins(default: Taxonomy) -> None:
    assert found("a man in a dress shirt", default) == ["shirt"]
    assert found("studio lighting", default) == ["studio_light"]
    assert found("long wavy brown hair", default) == ["long_hair", "wavy_hair", "brown_hair"]
    assert found("a woman with long hair", default) == ["long_hair"]


@pytest.mark.parametrize(
    ("caption", "concepts"),
    [
        ("not smiling", []),
        ("a man without glasses", []),
        ("no hat", []),
        ("a woman with no glasses and a red hat", ["hat"]),
        ("she isn't smiling", []),
        ("he doesn't have any glasses", []),
        ("she is not wearing a red hat", []),
        ("no hat or glasses", []),
        ("no glasses, smiling", ["smiling"]),
        ("a man not smiling, wearing a hat", ["hat"]),
        ("not smiling wearing a hat", ["hat"]),  # a match ends the negation
        ("not only smiling but laughing", ["smiling"]),  # "but" ends it; laughing is smiling
        ("free of makeup", []),
        ("never smiles", []),
        ("a woman with glasses who is not smiling", ["glasses"]),
        ("without long blonde hair", []),
    ],
)
def test_negation(default: Taxonomy, caption: str, concepts: list[str]) -> None:
    assert found(caption, default) == concepts


def test_negation_reach_is_three_words(default: Taxonomy) -> None:
    assert found("not at this moment very happily smiling", default) == ["smiling"]
    assert found("not very happily smiling", default) == []


def test_cosplay_taxonomy() -> None:
    cosplay = load_taxonomy(ROOT / "configs" / "taxonomy_cosplay.json")
    image = extract(
        "A cosplayer dressed as an anime character with a blue wig and a cape, holding a prop "
        "weapon at a convention. No mask.",
        cosplay,
    )
    assert image.concepts == ["anime_character", "wig", "cape", "prop_weapon", "convention"]
    assert image.setting == "convention"
    assert image.pose is None
    assert image.clothing == []
    assert image.attributes == ["anime_character", "wig", "cape", "prop_weapon"]
    assert extract("armour and armor in a photo studio", cosplay).concepts == [
        "armor", "photo_studio",
    ]  # fmt: skip


def test_custom_categories_and_tie_break() -> None:
    taxonomy = parse_taxonomy(
        {"lighting": {"neon": ["neon sign"], "dark": []}, "mood": ["cheerful"]}, source="t"
    )
    image = extract("a cheerful face, dark room, neon sign", taxonomy)
    assert image.lighting == "neon"
    assert image.attributes == ["cheerful"]


def test_ten_thousand_captions_run(default: Taxonomy) -> None:
    captions = [
        "a woman with long blonde hair wearing a black dress standing in front of a building",
        "1girl, solo, long_hair, smile, looking_at_viewer, outdoors, blue_sky",
        "a man without glasses, not smiling, sitting in a studio with soft lighting",
    ] * 3334
    images = extract_all(captions, default)
    assert len(images) == 10002
    assert images[-1].concepts == ["sitting", "studio", "soft_light"]


def test_top_concepts_counts_images_orders_and_rounds() -> None:
    def image(*concepts: str) -> ImageConcepts:
        return ImageConcepts(raw_caption="", concepts=list(concepts))

    images = [
        image("smiling", "outdoor"),
        image("smiling", "indoor"),
        image("outdoor", "smiling"),
        image("indoor"),
        image("beard"),
    ]
    top = top_concepts(images, total_images=6)
    assert [(t.concept, t.count, t.frequency) for t in top] == [
        ("smiling", 3, 0.5),
        ("indoor", 2, 0.33),  # ties by name
        ("outdoor", 2, 0.33),
        ("beard", 1, 0.17),
    ]
    assert [t.concept for t in top_concepts(images, 6, limit=2)] == ["smiling", "indoor"]
    assert top_concepts([], 0) == []
    assert top[0].model_dump() == {"concept": "smiling", "count": 3, "frequency": 0.5}
