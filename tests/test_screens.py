"""Screens: golden images in both languages, nothing cut off, glyph coverage, legibility."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from appliance.cli import main
from appliance.station.states import FailReason, SlotState
from appliance.ui.fonts import BODY, SMALL, TITLE
from appliance.ui.messages import LANGUAGES, MESSAGES, catalogue, placeholders
from appliance.ui.samples import SAMPLES
from appliance.ui.screens import SAFE_H, SAFE_W, SCREENS, Painter, render

REFERENCE = Path(__file__).resolve().parent / "reference" / "screens"
REGENERATE = os.environ.get("FLASHSTATION_REGENERATE") == "1"


def assert_identical_image(reference: Path, image: Image.Image) -> None:
    """Bounding-box diff, as luma.core's tests do; regenerating writes and then fails."""
    if REGENERATE:
        reference.parent.mkdir(parents=True, exist_ok=True)
        image.save(reference)
        pytest.fail(f"regenerated {reference}; run again without FLASHSTATION_REGENERATE")
    assert reference.exists(), f"no golden {reference}: run with FLASHSTATION_REGENERATE=1"
    expected = Image.open(reference).convert("1")
    bbox = ImageChops.difference(expected.convert("L"), image.convert("L")).getbbox()
    assert bbox is None, f"{reference.name} differs from the golden image in {bbox}"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("sample", list(SAMPLES))
def test_screen_matches_golden(language: str, sample: str) -> None:
    screen, make = SAMPLES[sample]
    frame = render(make(), catalogue(language))
    assert frame.name == screen
    assert frame.overflows == []
    assert_identical_image(REFERENCE / language / f"{sample}.png", frame.image)


def test_every_screen_has_a_sample() -> None:
    assert {screen for screen, _ in SAMPLES.values()} == set(SCREENS)


@pytest.mark.parametrize("language", LANGUAGES)
def test_nothing_drawn_outside_the_shift_margin(language: str) -> None:
    """Column 127 and row 63 stay dark so the burn-in shift never cuts a pixel."""
    for sample, (_, make) in SAMPLES.items():
        image = render(make(), catalogue(language)).image
        right = image.crop((SAFE_W, 0, 128, 64)).getbbox()
        bottom = image.crop((0, SAFE_H, 128, 64)).getbbox()
        assert right is None and bottom is None, f"{language}/{sample} draws in the margin"


def test_overflow_is_detected() -> None:
    image = Image.new("1", (128, 64))
    painter = Painter(__import__("PIL.ImageDraw", fromlist=["Draw"]).Draw(image))
    painter.text(0, 0, "a very long sentence that cannot fit on one line", BODY, 60)
    assert len(painter.overflows) == 1
    painter.wrap(
        0, 12, "한국어 문장이 너무 길어서 두 줄에 다 들어가지 않습니다 정말로", BODY, 60, 2
    )
    found = len(painter.overflows)
    assert found > 1
    painter.text(0, 0, "a long file name that may be shortened.mp4", BODY, 60, elide=True)
    assert len(painter.overflows) == found


def test_catalogue_languages_agree() -> None:
    for key, (en, ko) in MESSAGES.items():
        assert en and ko, key
        assert placeholders(en) == placeholders(ko), key


def test_plain_words_for_every_reason_and_state() -> None:
    m = catalogue("ko")
    for reason in FailReason:
        assert m.has(f"reason.{reason}") and m.has(f"short.{reason}"), reason
    for state in SlotState:
        assert m.has(f"state.{state}"), state


def test_fonts_cover_every_message() -> None:
    """No catalogue character falls back to the empty .notdef box."""
    text = "".join(en + ko for en, ko in MESSAGES.values()) + "0123456789%+:…—"
    assert BODY.missing(text) == set()
    titles = "".join(
        v
        for k, pair in MESSAGES.items()
        for v in pair
        if k.split(".")[0] in ("app", "content", "ready", "totals", "error", "confirm", "shutdown")
    )
    assert TITLE.missing(titles) == set(), "title face lacks a glyph"


@pytest.mark.parametrize("language", LANGUAGES)
def test_hangul_only_in_legible_faces(language: str) -> None:
    """The 10 px face is for digits and ASCII; Hangul is drawn at 12 px or more."""
    from PIL import ImageDraw

    for sample, (_, make) in SAMPLES.items():
        image = Image.new("1", (128, 64))
        painter = Painter(ImageDraw.Draw(image))
        snap = make()
        SCREENS[SAMPLES[sample][0]](painter, snap, catalogue(language))
        for text, _face in painter.faces:
            if _face is SMALL:
                assert all(ord(ch) < 0x1100 for ch in text), f"{sample}: {text!r} in 10 px"


def test_screens_command_writes_pngs(tmp_path: Path) -> None:
    assert main(["screens", "--out", str(tmp_path), "--language", "ko"]) == 0
    written = sorted(p.name for p in tmp_path.glob("*.png"))
    assert written == sorted(f"{s}.png" for s in SAMPLES)
    assert Image.open(tmp_path / "grid.png").size == (128, 64)


def test_the_contact_sheets_in_the_docs_are_current() -> None:
    """docs/ui.md shows every screen.

    Regenerate with `flashstation screens --sheet --out docs/images`.
    """
    from PIL import Image, ImageChops

    from appliance.commands.screens import contact_sheet
    from appliance.ui.samples import SAMPLES

    docs = Path(__file__).resolve().parent.parent / "docs" / "images"
    for language in ("en", "ko"):
        fresh = contact_sheet(language)
        with Image.open(docs / f"screens-{language}.png") as stored:
            kept = stored.convert("1")
        assert (
            kept.size == fresh.size
            and not ImageChops.difference(kept.convert("L"), fresh.convert("L")).getbbox()
        ), (
            f"docs/images/screens-{language}.png is out of date "
            "(flashstation screens --sheet --out docs/images)"
        )
    rows = -(-len(SAMPLES) // 4)
    assert fresh.height > rows * 64  # every sample has a cell


def test_screens_sheet_command_writes_one_sheet_per_language(tmp_path: Path) -> None:
    from appliance.cli import main

    assert main(["screens", "--sheet", "--out", str(tmp_path / "sheets")]) == 0
    assert sorted(p.name for p in (tmp_path / "sheets").iterdir()) == [
        "screens-en.png",
        "screens-ko.png",
    ]
