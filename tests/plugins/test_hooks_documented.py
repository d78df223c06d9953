"""Meta-tests (datasette's): every hook is documented in docs/plugins/ and has a test."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from beaver import hookspecs, interfaces
from beaver.plugins import DISABLE_ENV, ENTRY_POINT_GROUP, SPEC_TYPES, TRACE_ENV, PluginSpec

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "plugins"
HOOKS_MD = DOCS / "hooks.md"
INDEX_MD = DOCS / "index.md"
TESTS = ROOT / "tests"

SPEC_MARKER = f"{hookspecs.PROJECT_NAME}_spec"  # the attribute pluggy's HookspecMarker sets
PROTOCOLS = (interfaces.FaceDetector, interfaces.Captioner, interfaces.Trainer)


def _hookspecs() -> dict[str, Callable[..., Any]]:
    return {
        name: fn
        for name, fn in vars(hookspecs).items()
        if name.startswith("beaver_") and callable(fn) and hasattr(fn, SPEC_MARKER)
    }


HOOKS = sorted(_hookspecs())


def _annotation(value: Any) -> str:
    # hookspecs.py and interfaces.py use `from __future__ import annotations`: strings.
    return value if isinstance(value, str) else inspect.formatannotation(value)


def signature_line(fn: Callable[..., Any]) -> str:
    """``def name(arg: T, ...) -> R`` as written in the source."""
    params = []
    for param in inspect.signature(fn).parameters.values():
        text = param.name
        if param.annotation is not inspect.Parameter.empty:
            text += f": {_annotation(param.annotation)}"
        params.append(text)
    returns = inspect.signature(fn).return_annotation
    tail = "" if returns is inspect.Signature.empty else f" -> {_annotation(returns)}"
    return f"def {fn.__name__}({', '.join(params)}){tail}"


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _test_function_names() -> set[str]:
    names: set[str] = set()
    for path in TESTS.rglob("test_*.py"):
        names.update(re.findall(r"^\s*(?:async\s+)?def\s+(test_\w+)", _text(path), re.MULTILINE))
    return names


def test_there_are_hooks():
    assert HOOKS == ["beaver_captioners", "beaver_face_detectors", "beaver_trainers"]


def test_every_record_kind_has_a_hookspec():
    assert sorted(spec_type.hook for spec_type in SPEC_TYPES) == HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_heading_in_hooks_md(hook):
    assert re.search(rf"^## {re.escape(hook)}$", _text(HOOKS_MD), re.MULTILINE), (
        f"docs/plugins/hooks.md needs a heading '## {hook}'"
    )


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_signature_is_in_hooks_md(hook):
    line = signature_line(_hookspecs()[hook])

    assert line in _text(HOOKS_MD), f"docs/plugins/hooks.md needs the signature {line!r}"


def test_hooks_md_documents_no_stale_hooks():
    headings = re.findall(r"^## (beaver_\w+)$", _text(HOOKS_MD), re.MULTILINE)

    assert sorted(headings) == HOOKS


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(PluginSpec)])
def test_record_field_is_documented(field):
    assert f"`{field}`" in _text(HOOKS_MD), f"docs/plugins/hooks.md should explain `{field}`"


@pytest.mark.parametrize(
    "method",
    [
        fn
        for proto in PROTOCOLS
        for name, fn in vars(proto).items()
        if inspect.isfunction(fn) and not name.startswith("_")
    ],
    ids=lambda m: m.__qualname__,
)
def test_runtime_protocol_is_documented(method):
    line = signature_line(method)

    assert line in _text(HOOKS_MD), f"docs/plugins/hooks.md needs the protocol {line!r}"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook):
    assert f"test_hook_{hook}" in _test_function_names(), (
        f"add a test named test_hook_{hook} (tests/plugins/test_hooks.py)"
    )


@pytest.mark.parametrize(
    "needle",
    [
        DISABLE_ENV,
        TRACE_ENV,
        f"[project.entry-points.{ENTRY_POINT_GROUP}]",
        "make_plugin_manager(",
        "Choose one of:",
    ],
)
def test_plugin_guide_mentions(needle):
    assert needle in _text(INDEX_MD)


def test_plugin_guide_names_every_first_party_plugin():
    guide = _text(INDEX_MD)
    builtins = sorted(
        p.name.removeprefix("beaver_")
        for p in (ROOT / "plugins").iterdir()
        if (p / "__init__.py").is_file()
    )

    assert [name for name in builtins if f"`{name}`" not in guide] == []


@pytest.mark.parametrize("page", ["index.md", "hooks.md", "example/README.md"])
def test_python_examples_in_the_docs_parse(page):
    blocks = re.findall(r"^```python\n(.*?)^```$", _text(DOCS / page), re.MULTILINE | re.DOTALL)
    for block in blocks:
        ast.parse(block)
