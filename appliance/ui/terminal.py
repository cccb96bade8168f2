"""The OLED drawn in a terminal with half-block characters, and keys read without Enter.

Two screen pixels per character cell (upper and lower half), so 128×64
becomes 128 columns by 32 lines. Own renderer rather than luma.emulator's
text devices because those need pygame or curses set up the same way on
every terminal; this one needs only ANSI escapes.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import tty
from collections.abc import Iterator

from PIL import Image

BLOCKS = {(0, 0): " ", (1, 0): "▀", (0, 1): "▄", (1, 1): "█"}


def to_text(image: Image.Image) -> list[str]:
    """The image as lines of half-block characters (pixels lit = ink)."""
    img = image.convert("1")
    w, h = img.size
    px = img.load()
    assert px is not None
    lines = []
    for y in range(0, h, 2):
        row = []
        for x in range(w):
            top = 1 if px[x, y] else 0
            bottom = 1 if y + 1 < h and px[x, y + 1] else 0
            row.append(BLOCKS[(top, bottom)])
        lines.append("".join(row))
    return lines


def frame_text(image: Image.Image, footer: list[str]) -> str:
    border = "+" + "-" * image.width + "+"
    body = [f"|{line}|" for line in to_text(image)]
    return "\x1b[H" + "\n".join([border, *body, border, *footer]) + "\x1b[J"


@contextlib.contextmanager
def raw_keys() -> Iterator[None]:
    """Keys without Enter or echo while inside; the terminal is restored after."""
    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        sys.stdout.write("\x1b[?25l\x1b[2J")
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)
        sys.stdout.write("\x1b[?25h\n")
        sys.stdout.flush()


def read_key(timeout: float) -> str | None:
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    if not ready:
        return None
    return os.read(sys.stdin.fileno(), 1).decode(errors="replace")
