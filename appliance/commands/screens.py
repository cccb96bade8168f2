"""``flashstation screens --out DIR [--language en|ko]``: every screen as PNG.

Renders each representative sample of :mod:`appliance.ui.samples` through
the real screen code (the same frames the OLED shows), one PNG per sample,
named ``<sample>.png``. Used for the golden images in
``tests/reference/screens/`` and the pictures in the docs. ``--scale``
enlarges the pixels for viewing; goldens use 1. ``--sheet`` writes one
contact sheet per language instead (every sample, named, on a grid): the
pictures at the top of ``docs/ui.md``, which ``tests/test_screens.py`` keeps
current.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from appliance.errors import FlashStationError, UsageError

LANGUAGES = ("en", "ko")  # appliance.ui.messages.LANGUAGES, without importing the UI at start-up


def register(sub: Any) -> None:
    parser = sub.add_parser("screens", help="render every OLED screen to PNG files")
    parser.add_argument("--out", required=True, type=Path, help="folder for the PNG files")
    parser.add_argument("--language", choices=LANGUAGES, default=None, help="default: both")
    parser.add_argument("--scale", type=int, default=1, help="enlarge each pixel (default 1)")
    parser.add_argument(
        "--sheet",
        action="store_true",
        help="write one contact sheet per language (OUT/screens-<language>.png) instead",
    )
    parser.set_defaults(handler=screens_command)


def render_all(out: Path, language: str, scale: int = 1) -> list[Path]:
    """Write ``out/<sample>.png`` for every sample; raise if any text would be cut off."""
    from PIL import Image

    from appliance.ui.messages import catalogue
    from appliance.ui.samples import SAMPLES
    from appliance.ui.screens import render

    if scale < 1:
        raise UsageError("--scale must be 1 or more")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FlashStationError(f"cannot create {out}: {exc.strerror}") from exc
    m = catalogue(language)
    written = []
    problems = []
    for name, (_screen, make) in SAMPLES.items():
        frame = render(make(), m)
        problems += [f"{language}/{name}: {o}" for o in frame.overflows]
        image = frame.image
        if scale > 1:
            size = (image.width * scale, image.height * scale)
            image = image.resize(size, Image.Resampling.NEAREST)
        path = out / f"{name}.png"
        image.save(path)
        written.append(path)
    if problems:
        raise FlashStationError("text cut off: " + "; ".join(problems))
    return written


SHEET_COLUMNS = 4
SHEET_GAP = 8  # pixels around and between the framed screens
SHEET_LABEL = 12  # pixels under each screen for its name


def contact_sheet(language: str, columns: int = SHEET_COLUMNS) -> Any:
    """Every sample screen, framed and named, on one 1-bit image (``PIL.Image``)."""
    from PIL import Image, ImageDraw

    from appliance.ui.fonts import SMALL
    from appliance.ui.messages import catalogue
    from appliance.ui.samples import SAMPLES
    from appliance.ui.screens import render

    m = catalogue(language)
    frames = [(name, render(make(), m).image) for name, (_screen, make) in SAMPLES.items()]
    width, height = frames[0][1].size
    cell_w, cell_h = width + 2 + SHEET_GAP, height + 2 + SHEET_LABEL + SHEET_GAP
    rows = -(-len(frames) // columns)
    sheet = Image.new("1", (SHEET_GAP + columns * cell_w, SHEET_GAP + rows * cell_h), 1)
    draw = ImageDraw.Draw(sheet)
    for i, (name, image) in enumerate(frames):
        x = SHEET_GAP + (i % columns) * cell_w
        y = SHEET_GAP + (i // columns) * cell_h
        draw.rectangle((x, y, x + width + 1, y + height + 1), outline=0)
        sheet.paste(image.convert("1"), (x + 1, y + 1))
        draw.text((x, y + height + 3), name, font=SMALL.font, fill=0)
    return sheet


def screens_command(args: argparse.Namespace) -> int:
    languages = [args.language] if args.language else list(LANGUAGES)
    if args.sheet:
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FlashStationError(f"cannot create {args.out}: {exc.strerror}") from exc
        for language in languages:
            path = args.out / f"screens-{language}.png"
            contact_sheet(language).save(path)
            print(f"{language}: contact sheet {path}")
        return 0
    for language in languages:
        out = args.out / language if len(languages) > 1 else args.out
        paths = render_all(out, language, args.scale)
        print(f"{language}: {len(paths)} screens in {out}")
    return 0
