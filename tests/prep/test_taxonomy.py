"""Taxonomy files: both forms, the packaged default, clear errors on malformed files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from beaver.errors import InputError
from beaver.prep.taxonomy import (
    TaxonomyFile,
    load_taxonomy,
    parse_taxonomy,
    taxonomy_schema,
    words,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGED = ROOT / "src" / "beaver" / "prep" / "default_taxonomy.json"


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "taxonomy.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_committed_schema_matches_code() -> None:
    committed = json.loads((ROOT / "docs/schemas/taxonomy.schema.json").read_text("utf-8"))
    assert committed == taxonomy_schema(), "regenerate docs/schemas/taxonomy.schema.json"


def test_configs_default_is_the_packaged_default() -> None:
    assert json.loads((ROOT / "configs/taxonomy.json").read_text("utf-8")) == json.loads(
        PACKAGED.read_text("utf-8")
    ), "configs/taxonomy.json must be a copy of src/beaver/prep/default_taxonomy.json"


@pytest.mark.parametrize("name", ["taxonomy.json", "taxonomy_cosplay.json"])
def test_shipped_taxonomies_are_valid(name: str) -> None:
    path = ROOT / "configs" / name
    TaxonomyFile.model_validate_json(path.read_text("utf-8"))
    assert load_taxonomy(path).concepts


def test_default_has_the_documented_categories() -> None:
    taxonomy = load_taxonomy(None)
    assert taxonomy.source == "default taxonomy"
    for category in [
        "pose", "setting", "lighting", "clothing", "expression", "hair_color", "hair_length",
        "hair_style", "facial_hair", "glasses", "accessories", "framing",
    ]:  # fmt: skip
        assert taxonomy.category(category), category
    doc = (ROOT / "docs" / "concepts.md").read_text("utf-8")
    for category in taxonomy.categories:
        assert f"`{category}`" in doc, f"docs/concepts.md does not mention {category}"


def test_simple_form_terms_become_snake_case_concepts(tmp_path: Path) -> None:
    taxonomy = load_taxonomy(ROOT / "configs" / "taxonomy_cosplay.json")
    assert [c.id for c in taxonomy.category("costume_elements")] == [
        "wig", "armor", "prop_weapon", "cape", "mask", "accessories",
    ]  # fmt: skip
    assert taxonomy.category("costume_elements")[2].terms == (("prop", "weapon"),)
    assert taxonomy.categories == ("costume_type", "costume_elements", "setting")


def test_rich_form_id_is_a_term_and_forms_mix(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"expression": {"smiling": ["grin", "Laughing"]}, "clothing": ["T-shirt", "hat", "hat"]},
    )
    taxonomy = load_taxonomy(path)
    smiling = taxonomy.category("expression")[0]
    assert smiling.terms == (("smiling",), ("grin",), ("laughing",))
    assert [c.id for c in taxonomy.category("clothing")] == ["t_shirt", "hat"]


def test_words_split_tags_and_drop_articles() -> None:
    assert words("1girl, long_hair, The close-up") == [
        "1girl", ",", "long", "hair", ",", "close", "up",
    ]  # fmt: skip
    assert words("She isn\u2019t smiling.") == ["she", "isn't", "smiling", "."]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such taxonomy file") as info:
        load_taxonomy(tmp_path / "nope.json")
    assert info.value.path == tmp_path / "nope.json"


def test_bad_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "taxonomy.json"
    path.write_text('{\n  "pose": ["standing",]\n}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"not valid JSON \(line 2") as info:
        load_taxonomy(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "a JSON object of categories, not a list"),
        ({}, "has no categories"),
        ({"Pose": ["standing"]}, "category 'Pose' is not a snake_case name"),
        ({"pose": "standing"}, "pose: expected a list of terms or an object"),
        ({"pose": []}, "category 'pose' has no terms"),
        ({"pose": ["standing", 3]}, "pose: terms are strings, not a number"),
        ({"pose": ["standing", "  "]}, "term '  ' has no words"),
        ({"pose": ["sit, stand"]}, "contains punctuation"),
        ({"pose": {"Standing": []}}, "concept id 'Standing' is not a snake_case name"),
        ({"pose": {"standing": "stand"}}, "pose.standing: expected a list of synonyms"),
        ({"pose": {"standing": [None]}}, "pose.standing: terms are strings, not null"),
        ({"pose": ["hat"], "clothing": ["hat"]}, "'hat' is in both 'pose' and 'clothing'"),
        (
            {"clothing": {"hat": ["cap"], "cap_hat": ["cap"]}},
            "term 'cap' names both 'hat' and 'cap_hat'",
        ),
    ],
)
def test_malformed_taxonomies(tmp_path: Path, data: object, message: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(InputError) as info:
        load_taxonomy(path)
    assert message in str(info.value)
    assert str(info.value).startswith(f"{path}: ")
    assert "docs/concepts.md" in str(info.value)


def test_parse_names_its_source() -> None:
    with pytest.raises(InputError) as info:
        parse_taxonomy({}, source="inline")
    assert str(info.value).startswith("inline: ")
