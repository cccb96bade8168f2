"""The bundled Galmuri bitmap fonts (OFL; appliance/data/fonts/README.md says where from).

Embedded-bitmap TrueType files render pixel-exact only at their strike
size, so each font is opened at exactly that size. No system font is
needed at run time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import ImageFont

FONT_DIR = Path(__file__).resolve().parent.parent / "data" / "fonts"


@dataclass(frozen=True)
class Face:
    """A font at its strike size and the line height the layouts use."""

    file: str
    size: int
    line: int  # pixels from one baseline to the next
    top: int  # blank rows above the tallest glyph, drawn above the line box

    @property
    def font(self) -> ImageFont.FreeTypeFont:
        return _load(self.file, self.size)

    def width(self, text: str) -> int:
        """Pixels the text needs: the advance, or the ink if that reaches further."""
        if not text:
            return 0
        return max(math.ceil(self.font.getlength(text)), int(self.font.getbbox(text)[2]))

    def missing(self, text: str) -> set[str]:
        """Characters of ``text`` this font has no glyph for (drawn as the .notdef box)."""
        notdef = _mask(self.file, self.size, "\uffff")
        return {ch for ch in set(text) if ch.strip() and _mask(self.file, self.size, ch) == notdef}


@cache
def _load(file: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_DIR / file), size)


@cache
def _mask(file: str, size: int, ch: str) -> tuple[tuple[int, int], bytes]:
    mask = _load(file, size).getmask(ch, mode="1")
    return mask.size, bytes(mask)


SMALL = Face("Galmuri7.ttf", 10, 10, 1)
BODY = Face("Galmuri9.ttf", 12, 12, 1)
TITLE = Face("Galmuri11-Bold.ttf", 16, 15, 2)
FACES = (SMALL, BODY, TITLE)
