"""`beaver preview` in headless Chromium: browse, filter, edit, and check the files on disk.

Runs Debian's ``chromium`` through Playwright's driver (no browser download). Without
Chromium or the playwright package the tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from beaver.preview.server import PreviewServer
from beaver.testing.trainset import write_prepared

try:
    from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
except ImportError:  # reported by the browser fixture: skipped locally, failed under CI
    HAVE_PLAYWRIGHT = False
else:
    HAVE_PLAYWRIGHT = True

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
# Read at import: the suite's autouse fixture removes BEAVER_* variables from each test.
ARTIFACTS = Path(os.environ.get("BEAVER_ARTIFACTS") or REPO / "test-artifacts")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
]
TIMEOUT_MS = 5_000


def _chromium() -> str | None:
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"browser tests must run in CI: {why}")
    pytest.skip(why)


class PageErrors(list[str]):
    """Uncaught exceptions and console errors of the page (CSP violations included)."""


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    if not HAVE_PLAYWRIGHT:
        _unavailable("the playwright package is not installed (pip install playwright)")
    executable = _chromium()
    if executable is None:
        _unavailable("Chromium is not installed (Debian: apt-get install chromium)")
    home = tmp_path_factory.mktemp("browser-home")
    env: dict[str, str | float | bool] = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
    }
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, env=env)
        yield launched
        launched.close()


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_prepared(tmp_path / "ds")


@pytest.fixture
def server(dataset: Path, tmp_path: Path) -> Iterator[PreviewServer]:
    srv = PreviewServer(dataset, host="127.0.0.1", port=0, cache=tmp_path / "thumbs")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def errors() -> PageErrors:
    return PageErrors()


def _open(
    browser: Browser, url: str, errors: PageErrors, width: int = 1280, height: int = 900
) -> Page:
    ctx = browser.new_context(viewport={"width": width, "height": height})
    page = ctx.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(url)
    expect(page.get_by_test_id("card").first).to_be_visible()
    return page


@pytest.fixture
def page(browser: Browser, server: PreviewServer, errors: PageErrors) -> Iterator[Page]:
    opened = _open(browser, server.url, errors)
    yield opened
    opened.context.close()
    assert list(errors) == []


# -- helpers ----------------------------------------------------------------------------------


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _manifest(dataset: Path) -> list[dict[str, Any]]:
    images: list[dict[str, Any]] = _json(dataset / "preview_manifest.json")["images"]
    return images


def _card(page: Page, filename: str) -> Locator:
    return page.locator(f'[data-testid="card"][data-filename="{filename}"]')


def _shown(page: Page) -> set[str]:
    names = page.get_by_test_id("card").evaluate_all("cs => cs.map(c => c.dataset.filename)")
    return set(names)


def _expect_shown(page: Page, expected: set[str]) -> None:
    expect(page.get_by_test_id("shown-count")).to_have_attribute("data-shown", str(len(expected)))
    expect(page.get_by_test_id("card")).to_have_count(len(expected))
    assert _shown(page) == expected


def _loaded(image: Locator) -> None:
    """Wait until ``image`` has loaded (a lazy one loads once it is near the viewport)."""
    image.evaluate(
        "img => (img.complete && img.naturalWidth > 0)"
        " || new Promise((ok, fail) => { img.onload = ok; img.onerror = fail; })"
    )


def _saved(page: Page) -> None:
    expect(page.get_by_test_id("panel-status")).to_have_attribute("data-state", "saved")


def _chart_count(page: Page, shot: str) -> Locator:
    return page.locator(f'[data-testid="chart-shot"][data-shot="{shot}"]')


def _key_of_source(dataset: Path, source: str) -> str:
    """The shots.json key (the file's current name) of the photo from ``source``."""
    for key, entry in _json(dataset / "shots.json").items():
        if entry["source"] == source:
            return str(key)
    raise AssertionError(f"no shots.json entry has source {source}")


# -- browsing ---------------------------------------------------------------------------------


def test_grid_shows_every_image_with_lazy_thumbnails(page: Page, dataset: Path) -> None:
    listed = {e["filename"] for e in _manifest(dataset)}
    assert len(listed) == 47
    _expect_shown(page, listed)
    expect(page.get_by_test_id("shown-count")).to_contain_text("47")
    assert page.title() == "Emma — beaver preview"

    first = page.get_by_test_id("card").first.locator("img")
    assert first.get_attribute("loading") == "lazy"
    assert str(first.get_attribute("src")).startswith("/thumb/")
    assert first.get_attribute("alt")
    _loaded(first)
    size = first.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert 0 < max(size) <= 320

    cards = page.get_by_test_id("card")
    assert cards.evaluate_all("cs => cs.every(c => c.tagName === 'BUTTON')")
    assert page.locator("img:not([alt])").count() == 0
    # A shot badge on each card.
    expect(_card(page, "close/emma_close_0001.jpg").get_by_test_id("card-shot")).to_have_text(
        "Close-up"
    )


def test_charts_and_warnings_show_the_distribution(page: Page, dataset: Path) -> None:
    for shot, count in {"close": 15, "mid": 20, "far": 12}.items():
        expect(_chart_count(page, shot)).to_have_attribute("data-count", str(count))
    chart = page.get_by_test_id("chart-shots")
    expect(chart).to_contain_text("32%")  # 15 of 47
    expect(chart).to_contain_text("30%\u201340%")  # the recommended range for close-ups
    top = _json(dataset / "metadata.json")["top_concepts"]
    rows = page.get_by_test_id("chart-concept")
    expect(rows).to_have_count(len(top))
    for i, concept in enumerate(top):
        expect(rows.nth(i)).to_have_attribute("data-concept", concept["concept"])
        expect(rows.nth(i)).to_have_attribute("data-count", str(concept["count"]))
    expect(page.get_by_test_id("warnings")).to_be_visible()


# -- filters ----------------------------------------------------------------------------------


def test_filters_combine_shots_concepts_and_caption_search(page: Page, dataset: Path) -> None:
    images = _manifest(dataset)

    def where(pred: Any) -> set[str]:
        return {e["filename"] for e in images if pred(e)}

    page.get_by_test_id("filter-shot-close").check()
    _expect_shown(page, where(lambda e: e["shot_type"] == "close"))
    page.get_by_test_id("filter-shot-far").check()
    close_far = where(lambda e: e["shot_type"] in ("close", "far"))
    _expect_shown(page, close_far)

    page.get_by_test_id("filter-concept-glasses").check()
    with_glasses = where(
        lambda e: e["shot_type"] in ("close", "far") and "glasses" in e["concepts"]
    )
    assert 0 < len(with_glasses) < len(close_far)
    _expect_shown(page, with_glasses)

    # Several concepts: an image must have all of them.
    page.get_by_test_id("filter-concept-outdoor").check()
    _expect_shown(
        page,
        where(
            lambda e: (
                e["shot_type"] in ("close", "far") and {"glasses", "outdoor"} <= set(e["concepts"])
            )
        ),
    )
    page.get_by_test_id("filter-concept-outdoor").uncheck()
    page.get_by_test_id("filter-concept-glasses").uncheck()

    page.get_by_test_id("search").fill("BEACH")
    _expect_shown(
        page,
        where(lambda e: e["shot_type"] in ("close", "far") and "beach" in e["caption"].lower()),
    )
    page.get_by_test_id("filter-shot-close").uncheck()
    page.get_by_test_id("filter-shot-far").uncheck()
    _expect_shown(page, where(lambda e: "beach" in e["caption"].lower()))

    page.get_by_test_id("search").fill("no caption says this")
    expect(page.get_by_test_id("card")).to_have_count(0)
    expect(page.get_by_text("No photos match these filters.")).to_be_visible()
    page.get_by_test_id("clear-filters").click()
    _expect_shown(page, where(lambda e: True))


# -- the panel and edits ------------------------------------------------------------------------


def test_panel_shows_the_image_with_its_face_box(page: Page, dataset: Path) -> None:
    _card(page, "close/emma_close_0002.jpg").click()
    panel = page.get_by_test_id("panel")
    expect(panel).to_be_visible()
    expect(page.get_by_test_id("panel-title")).to_have_text("emma_close_0002.jpg")
    expect(page.get_by_test_id("panel-shot-select")).to_have_value("close")
    caption = (dataset / "close" / "emma_close_0002.txt").read_text(encoding="utf-8").strip()
    expect(page.get_by_test_id("panel-caption")).to_have_value(caption)
    expect(page.get_by_test_id("panel-concepts")).to_contain_text("glasses")
    details = page.get_by_test_id("panel-details")
    expect(details).to_contain_text("45% of the photo's height")  # face ratio
    expect(details).to_contain_text("80%")  # confidence
    expect(details).to_contain_text("/photos/emma_close_0002.jpg")  # source

    image = page.get_by_test_id("panel-image")
    _loaded(image)
    box = page.get_by_test_id("panel-face-box")
    expect(box).to_be_visible()
    shown, drawn = image.bounding_box(), box.bounding_box()
    assert shown is not None
    assert drawn is not None
    assert shown["width"] > 96  # scaled up from the 96x128 original
    x1, y1, x2, y2 = _json(dataset / "shots.json")["emma_close_0002.jpg"]["face_bbox"]
    scale = shown["width"] / 96
    assert drawn["x"] - shown["x"] == pytest.approx(x1 * scale, abs=2)
    assert drawn["y"] - shown["y"] == pytest.approx(y1 * scale, abs=2)
    assert drawn["width"] == pytest.approx((x2 - x1) * scale, abs=2)
    assert drawn["height"] == pytest.approx((y2 - y1) * scale, abs=2)


def test_change_shot_type_moves_the_file_and_updates_every_json(page: Page, dataset: Path) -> None:
    _card(page, "close/emma_close_0001.jpg").click()
    page.get_by_test_id("panel-shot-select").select_option("far")
    _saved(page)

    new_name = _key_of_source(dataset, "/photos/emma_close_0001.jpg")
    new_file = f"far/{new_name}"
    assert not (dataset / "close" / "emma_close_0001.jpg").exists()
    assert not (dataset / "close" / "emma_close_0001.txt").exists()
    assert (dataset / new_file).is_file()
    assert (dataset / new_file).with_suffix(".txt").is_file()
    assert (dataset / "captions" / Path(new_name).with_suffix(".txt")).is_file()
    shots = _json(dataset / "shots.json")
    assert "emma_close_0001.jpg" not in shots
    assert shots[new_name]["shot_type"] == "far"
    meta = _json(dataset / "metadata.json")
    assert meta["shot_distribution"] == {"close": 14, "mid": 20, "far": 13}
    entries = {e["filename"]: e for e in _manifest(dataset)}
    assert "close/emma_close_0001.jpg" not in entries
    assert entries[new_file]["shot_type"] == "far"

    # The page follows the file: its card, the panel and the charts.
    expect(_card(page, new_file)).to_have_attribute("data-shot", "far")
    expect(_card(page, "close/emma_close_0001.jpg")).to_have_count(0)
    expect(page.get_by_test_id("panel-title")).to_have_text(new_name)
    expect(page.get_by_test_id("panel-shot-select")).to_have_value("far")
    expect(_chart_count(page, "close")).to_have_attribute("data-count", "14")
    expect(_chart_count(page, "far")).to_have_attribute("data-count", "13")
    page.get_by_test_id("filter-shot-far").check()
    expect(page.get_by_test_id("card")).to_have_count(13)


def _thumb_colour(page: Page, filename: str) -> list[int]:
    """The colour of a card's thumbnail, as the page shows it (the test images are plain)."""
    image = _card(page, filename).locator("img")
    image.scroll_into_view_if_needed()
    _loaded(image)
    colour: list[int] = image.evaluate(
        """img => {
          const canvas = document.createElement("canvas");
          canvas.width = canvas.height = 1;
          const ctx = canvas.getContext("2d");
          ctx.drawImage(img, 0, 0, 1, 1);
          return [...ctx.getImageData(0, 0, 1, 1).data].slice(0, 3);
        }"""
    )
    return colour


def test_a_reused_file_name_shows_the_new_photo(page: Page, dataset: Path) -> None:
    # Moving close_0001 away frees its name; the next photo moved to close takes it.
    old = _thumb_colour(page, "close/emma_close_0001.jpg")
    _card(page, "close/emma_close_0001.jpg").click()
    page.get_by_test_id("panel-shot-select").select_option("far")
    _saved(page)
    _card(page, "mid/emma_mid_0001.jpg").click()
    page.get_by_test_id("panel-shot-select").select_option("close")
    _saved(page)
    assert _key_of_source(dataset, "/photos/emma_mid_0001.jpg") == "emma_close_0001.jpg"

    with Image.open(dataset / "close" / "emma_close_0001.jpg") as image:
        on_disk = image.convert("RGB").getpixel((5, 5))
    assert isinstance(on_disk, tuple)
    shown = _thumb_colour(page, "close/emma_close_0001.jpg")
    assert shown != old
    assert shown == pytest.approx(list(on_disk), abs=8)


def test_edit_caption_writes_both_text_files(page: Page, dataset: Path) -> None:
    _card(page, "mid/emma_mid_0003.jpg").click()
    save = page.get_by_test_id("panel-save-caption")
    expect(save).to_be_disabled()
    text = "emma, a woman, mid shot, wearing glasses\non a sunny beach"
    page.get_by_test_id("panel-caption").fill(text)
    expect(save).to_be_enabled()
    save.click()
    _saved(page)

    one_line = "emma, a woman, mid shot, wearing glasses on a sunny beach"
    assert (dataset / "mid" / "emma_mid_0003.txt").read_text(encoding="utf-8") == one_line + "\n"
    assert (dataset / "captions" / "emma_mid_0003.txt").read_text(
        encoding="utf-8"
    ) == one_line + "\n"
    entry = next(e for e in _manifest(dataset) if e["filename"] == "mid/emma_mid_0003.jpg")
    assert entry["caption"] == one_line
    assert "glasses" in _json(dataset / "concepts.json")["emma_mid_0003.jpg"]["concepts"]

    expect(page.get_by_test_id("panel-caption")).to_have_value(one_line)
    expect(page.get_by_test_id("panel-concepts")).to_contain_text("glasses")
    expect(save).to_be_disabled()
    page.get_by_test_id("search").fill("sunny")
    _expect_shown(page, {"mid/emma_mid_0003.jpg"})


def test_exclude_then_include(page: Page, dataset: Path) -> None:
    _card(page, "close/emma_close_0004.jpg").click()
    exclude = page.get_by_test_id("panel-exclude")
    expect(exclude).to_have_text("Exclude from training")
    exclude.click()
    _saved(page)

    assert (dataset / "excluded" / "emma_close_0004.jpg").is_file()
    assert not (dataset / "close" / "emma_close_0004.jpg").exists()
    meta = _json(dataset / "metadata.json")
    assert meta["total_images"] == 46
    assert meta["shot_distribution"]["close"] == 14
    card = _card(page, "excluded/emma_close_0004.jpg")
    expect(card).to_have_attribute("data-excluded", "true")
    expect(card.get_by_test_id("card-excluded")).to_be_visible()
    expect(_chart_count(page, "close")).to_have_attribute("data-count", "14")
    expect(page.get_by_test_id("summary")).to_contain_text("46 photos")

    page.get_by_test_id("filter-excluded").uncheck()
    expect(page.get_by_test_id("card")).to_have_count(46)
    expect(card).to_have_count(0)
    page.get_by_test_id("filter-excluded").check()
    expect(page.get_by_test_id("card")).to_have_count(47)

    expect(exclude).to_have_text("Include in training again")
    exclude.click()
    _saved(page)
    assert (dataset / "close" / "emma_close_0004.jpg").is_file()
    assert not (dataset / "excluded" / "emma_close_0004.jpg").exists()
    assert _json(dataset / "metadata.json")["total_images"] == 47
    expect(_card(page, "close/emma_close_0004.jpg")).to_have_attribute("data-excluded", "false")
    expect(_chart_count(page, "close")).to_have_attribute("data-count", "15")


def test_emphasis_toggle(page: Page, dataset: Path) -> None:
    name = "far/emma_far_0005.jpg"
    _card(page, name).click()
    toggle = page.get_by_test_id("panel-emphasis")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    toggle.click()
    _saved(page)
    expect(toggle).to_have_attribute("aria-pressed", "true")
    expect(_card(page, name)).to_have_attribute("data-emphasis", "true")
    expect(_card(page, name).get_by_test_id("card-emphasis")).to_be_visible()
    assert name in _json(dataset / "metadata.json")["emphasis"]
    assert next(e for e in _manifest(dataset) if e["filename"] == name)["emphasis"] is True

    toggle.click()
    _saved(page)
    expect(toggle).to_have_attribute("aria-pressed", "false")
    expect(_card(page, name)).to_have_attribute("data-emphasis", "false")
    assert name not in _json(dataset / "metadata.json")["emphasis"]


# -- failures ---------------------------------------------------------------------------------


def test_a_refused_edit_is_shown_and_changes_nothing(
    page: Page, dataset: Path, errors: PageErrors
) -> None:
    before = (dataset / "preview_manifest.json").read_bytes()
    _card(page, "mid/emma_mid_0001.jpg").click()
    page.evaluate(
        "document.querySelector('meta[name=\"beaver-token\"]').setAttribute('content', 'wrong')"
    )
    page.get_by_test_id("panel-emphasis").click()

    error = page.get_by_test_id("error")
    expect(error).to_be_visible()
    expect(error).to_have_attribute("role", "alert")
    expect(error).to_contain_text("token")
    expect(page.get_by_test_id("panel-status")).to_have_attribute("data-state", "failed")
    expect(page.get_by_test_id("panel-emphasis")).to_have_attribute("aria-pressed", "false")
    assert (dataset / "preview_manifest.json").read_bytes() == before
    assert any("403" in e for e in errors)  # the browser logs the refused request
    errors.clear()

    page.get_by_role("button", name="Dismiss this message").click()
    expect(error).to_be_hidden()


def test_an_image_moved_by_another_tab_reports_and_reloads(
    page: Page, server: PreviewServer, dataset: Path, errors: PageErrors
) -> None:
    _card(page, "mid/emma_mid_0002.jpg").click()
    server.editor.set_shot("mid/emma_mid_0002.jpg", "close")  # another tab's edit
    page.get_by_test_id("panel-caption").fill("emma, a woman, reading")
    page.get_by_test_id("panel-save-caption").click()

    expect(page.get_by_test_id("error")).to_be_visible()
    expect(page.get_by_test_id("error")).to_contain_text("mid/emma_mid_0002.jpg")
    moved = f"close/{_key_of_source(dataset, '/photos/emma_mid_0002.jpg')}"
    expect(_card(page, moved)).to_be_visible()  # the page reloaded the dataset
    expect(_card(page, "mid/emma_mid_0002.jpg")).to_have_count(0)
    expect(_chart_count(page, "close")).to_have_attribute("data-count", "16")
    assert any("404" in e for e in errors)
    errors.clear()


# -- keyboard, layout, screenshots --------------------------------------------------------------


def test_keyboard_opens_steps_through_and_closes_the_panel(page: Page) -> None:
    first = _card(page, "close/emma_close_0001.jpg")
    first.focus()
    page.keyboard.press("Enter")
    panel = page.get_by_test_id("panel")
    expect(panel).to_be_visible()
    expect(page.get_by_test_id("panel-close")).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_test_id("panel-title")).to_have_text("emma_close_0002.jpg")
    page.keyboard.press("ArrowLeft")
    expect(page.get_by_test_id("panel-title")).to_have_text("emma_close_0001.jpg")
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(first).to_be_focused()


def test_an_unsaved_caption_is_not_dropped_silently(page: Page) -> None:
    _card(page, "far/emma_far_0002.jpg").click()
    caption = page.get_by_test_id("panel-caption")
    caption.fill("emma, a woman, half written")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.keyboard.press("Escape")  # from inside the caption box
    expect(page.get_by_test_id("panel")).to_be_visible()
    expect(caption).to_have_value("emma, a woman, half written")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("panel-close").click()
    expect(page.get_by_test_id("panel")).to_be_hidden()


def test_narrow_screen_has_no_sideways_scrolling(
    browser: Browser, server: PreviewServer, errors: PageErrors
) -> None:
    page = _open(browser, server.url, errors, width=390, height=844)
    try:
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.get_by_test_id("card").first.click()
        expect(page.get_by_test_id("panel")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        page.context.close()
    assert list(errors) == []


def test_screenshot_of_the_main_view(page: Page) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("networkidle")
    page.evaluate(
        "Promise.all([...document.images].filter(i => i.getBoundingClientRect().top"
        " < innerHeight).map(i => i.complete ? 0 : new Promise(r => i.onload = i.onerror = r)))"
    )
    target = ARTIFACTS / "preview-main.png"
    page.screenshot(path=str(target))
    assert target.stat().st_size > 10_000
    _card(page, "close/emma_close_0003.jpg").click()
    expect(page.get_by_test_id("panel-face-box")).to_be_visible()
    _loaded(page.get_by_test_id("panel-image"))
    page.screenshot(path=str(ARTIFACTS / "preview-panel.png"))
