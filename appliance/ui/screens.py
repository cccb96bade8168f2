"""Every screen, as a pure function from a station :class:`Snapshot` to drawing on a canvas.

The screen shown is chosen by :func:`choose` from the snapshot alone, and
:func:`render` draws it into a 1-bit 128×64 image. Everything is drawn
inside a 127×63 box so that the display can shift the frame by one pixel
against burn-in without cutting anything off. Text goes through
:class:`Painter`, which measures every string against the box it is drawn
in: a string that does not fit is shortened with "…" on the device and
recorded in :attr:`Painter.overflows`, which the tests require to be empty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image, ImageDraw

from appliance.station.machine import SlotView, Snapshot
from appliance.station.states import ACTIVE, FailReason, SlotState, StationState
from appliance.ui.fonts import BODY, SMALL, TITLE, Face
from appliance.ui.messages import Messages
from appliance.units import format_size

WIDTH, HEIGHT = 128, 64
SAFE_W, SAFE_H = WIDTH - 1, HEIGHT - 1  # room for the 1-pixel burn-in shift
ELLIPSIS = "…"


@dataclass
class Painter:
    """Draws text measured against its box; remembers what would have been cut off."""

    draw: ImageDraw.ImageDraw
    overflows: list[str] = field(default_factory=list)
    texts: list[tuple[str, tuple[int, int, int, int]]] = field(default_factory=list)
    faces: list[tuple[str, Face]] = field(default_factory=list)

    def text(
        self,
        x: int,
        y: int,
        s: str,
        face: Face = BODY,
        width: int | None = None,
        fill: int = 1,
        align: str = "left",
        elide: bool = False,
    ) -> int:
        """Draw one line in the box ``x .. x+width``; returns the width drawn.

        ``elide=True`` is for free-form data (a pack title, a file name): it may
        be shortened with "…" without counting as an overflow. Catalogue text
        never is.
        """
        avail = (SAFE_W - x) if width is None else width
        if x < 0 or x + avail > SAFE_W or y + face.line > SAFE_H:
            self.overflows.append(f"box of {s!r} at ({x},{y}) leaves the screen")
        w = face.width(s)
        if w > avail:
            if not elide:
                self.overflows.append(f"{s!r} is {w} px wide in a {avail} px box")
            while s and face.width(s + ELLIPSIS) > avail:
                s = s[:-1]
            s += ELLIPSIS
            w = face.width(s)
        if align == "right":
            x = x + avail - w
        elif align == "center":
            x = x + (avail - w) // 2
        self.draw.text((x, y - face.top + 1), s, font=face.font, fill=fill)
        self.texts.append((s, (x, y, x + w, y + face.line)))
        self.faces.append((s, face))
        return w

    def wrap(
        self, x: int, y: int, s: str, face: Face, width: int, max_lines: int, fill: int = 1
    ) -> int:
        """Draw ``s`` broken at spaces into at most ``max_lines`` lines; returns the next y."""
        lines = wrap_words(s, face, width)
        if len(lines) > max_lines:
            self.overflows.append(f"{s!r} needs {len(lines)} lines, has {max_lines}")
            lines = [*lines[: max_lines - 1], " ".join(lines[max_lines - 1 :])]
        for line in lines:
            self.text(x, y, line, face, width, fill)
            y += face.line
        return y

    def bar(self, x: int, y: int, w: int, h: int, fraction: float) -> None:
        self.draw.rectangle((x, y, x + w - 1, y + h - 1), outline=1, fill=0)
        inner = int((w - 4) * max(0.0, min(1.0, fraction)))
        if inner > 0:
            self.draw.rectangle((x + 2, y + 2, x + 1 + inner, y + h - 3), fill=1)


def wrap_words(s: str, face: Face, width: int) -> list[str]:
    """Greedy word wrap; a word wider than the box is broken between characters."""
    lines: list[str] = []
    line = ""
    for word in s.split():
        candidate = f"{line} {word}" if line else word
        if face.width(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        while face.width(word) > width:
            cut = len(word)
            while cut > 1 and face.width(word[:cut]) > width:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    if line:
        lines.append(line)
    return lines or [""]


# -- shared pieces ------------------------------------------------------------------------------


def title(p: Painter, s: str) -> int:
    """A title bar with a rule under it; falls back to the body face when bold is too wide."""
    if TITLE.width(s) <= SAFE_W:
        p.text(0, 0, s, TITLE)
    else:
        p.text(0, 2, s, BODY)
    p.draw.line((0, 15, SAFE_W - 1, 15), fill=1)
    return 15


def size_text(n: int) -> str:
    return format_size(n).replace(".0 ", " ")


def eta_text(m: Messages, seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = round(seconds)
    if s < 60:
        return m("unit.seconds", n=s)
    if s < 3600:
        return m("unit.minutes", n=(s + 59) // 60)
    return m("unit.hours", h=s // 3600, m=(s % 3600) // 60)


def speed_text(m: Messages, speed: float) -> str:
    mb = speed / 1e6
    if mb >= 1000:
        return m("unit.speed_gb", gb=f"{mb / 1000:.1f}")
    return m("unit.speed", mb=f"{mb:.0f}" if mb >= 10 else f"{mb:.1f}")


def reason_text(m: Messages, slot: SlotView) -> str:
    reason = slot.reason or FailReason.UNKNOWN
    detail = dict(slot.reason_detail)
    if reason is FailReason.FAKE_CAPACITY:
        return m(
            "reason.fake_capacity",
            real=size_text(int(detail.get("real", 0))),
            claimed=size_text(int(detail.get("claimed", slot.capacity))),
        )
    return m(f"reason.{reason}")


# -- glyphs for the slot grid (7×7) ------------------------------------------------------------

_GLYPHS = {
    "detected": ["", "", "", "...X...", "", "", ""],
    "waiting": ["XXXXXXX", ".X...X.", "..X.X..", "...X...", "..X.X..", ".X...X.", "XXXXXXX"],
    "probing": ["..XXX..", ".X...X.", ".....X.", "...XX..", "...X...", ".......", "...X..."],
    "wiping": ["...XXX.", "..X.XX.", ".X.XXX.", "X.XXX..", "XXXX...", ".XX....", "XXXXXXX"],
    "loading": ["...X...", "...X...", "...X...", "X..X..X", ".X.X.X.", "..XXX..", "...X..."],
    "verifying": ["", "..XXX..", ".X...X.", "X..X..X", ".X...X.", "..XXX..", ""],
    "done": ["......X", ".....XX", "....XX.", "X..XX..", "XXXX...", ".XX....", ""],
    "failed": ["X.....X", ".X...X.", "..X.X..", "...X...", "..X.X..", ".X...X.", "X.....X"],
    "removed": ["...X...", "..XXX..", ".X.X.X.", "...X...", "...X...", "", "XXXXXXX"],
    "rejected": ["...X...", "...X...", "...X...", "...X...", "...X...", "", "...X..."],
    "numbered": [".X...X.", "XXXXXXX", ".X...X.", ".X...X.", ".X...X.", "XXXXXXX", ".X...X."],
}


def glyph(p: Painter, x: int, y: int, name: str, fill: int = 1) -> None:
    for row, bits in enumerate(_GLYPHS.get(name, [])):
        for col, ch in enumerate(bits):
            if ch == "X":
                p.draw.point((x + col, y + row), fill=fill)


INVERTED = frozenset({SlotState.FAILED, SlotState.REMOVED, SlotState.REJECTED})


def grid_cell(p: Painter, slot: SlotView, x: int, y: int, w: int, h: int, face: Face) -> None:
    fill = 1
    if slot.state in INVERTED:
        p.draw.rectangle((x, y, x + w - 1, y + h - 1), fill=1)
        fill = 0
    tall = h >= 2 * SMALL.line
    number_w = face.width("16") + 1
    ty = y + 1 if tall else y + (h - face.line) // 2
    p.text(x + 1, ty, str(slot.number), face, number_w, fill, "right")
    gx = x + number_w + 3
    glyph(p, gx, ty + (face.line - 7) // 2, str(slot.state), fill)
    label = ""
    if slot.state in ACTIVE:
        label = f"{slot.percent}%" if tall else f"{slot.percent}"
    elif slot.state is SlotState.DONE:
        label = "OK"
    if not label:
        return
    if tall:
        p.text(x + 1, y + h - face.line, label, face, w - 3, fill, "right")
    else:
        avail = x + w - 1 - (gx + 8)
        p.text(gx + 8, ty, label, face, avail, fill, "right")


# -- screens ------------------------------------------------------------------------------------


def splash(p: Painter, snap: Snapshot, m: Messages) -> None:
    p.draw.rectangle((0, 0, SAFE_W - 1, SAFE_H - 1), outline=1)
    p.text(2, 10, m("app.name"), TITLE, SAFE_W - 4, align="center")
    p.text(2, 32, m("app.starting"), BODY, SAFE_W - 4, align="center")


def no_content(p: Painter, snap: Snapshot, m: Messages) -> None:
    y = title(p, m("app.name"))
    y = p.wrap(0, y, m("content.insert"), BODY, SAFE_W, 2)
    p.wrap(0, y, m("content.insert_hint"), BODY, SAFE_W, (SAFE_H - y) // BODY.line)


def checking(p: Painter, snap: Snapshot, m: Messages) -> None:
    y = title(p, m("content.checking"))
    c = snap.content
    p.text(0, y, f"{c.title} {c.version}".strip(), BODY, SAFE_W, elide=True)
    fraction = c.done / c.total if c.total else 0.0
    p.bar(0, y + 14, SAFE_W, 9, fraction)
    p.text(0, 40, m("content.files", done=c.done, total=c.total), BODY, 96)
    p.text(96, 40, f"{int(100 * fraction)}%", BODY, SAFE_W - 96, align="right")


def ready(p: Painter, snap: Snapshot, m: Messages) -> None:
    y = title(p, m("ready.insert"))
    c = snap.content
    p.text(0, y, f"{c.title} {c.version}".strip(), BODY, SAFE_W, elide=True)
    y += BODY.line
    # tier sizes, language-neutral, one column per tier: "8GB+" over "7.1GB"
    # (the stick size a tier needs, and how much it loads); the largest three
    shown = c.tiers[-3:]
    col_w = SAFE_W // 3
    for i, (_name, minimum, size) in enumerate(shown):
        x = i * col_w
        p.text(x, y, size_text(minimum).replace(" ", "") + "+", BODY, col_w - 2)
        p.text(x, y + BODY.line, size_text(size).replace(" ", ""), BODY, col_w - 2)
    hint = m("ready.auto") if snap.feeding == "auto" else m("ready.button")
    p.text(0, SAFE_H - BODY.line, hint, BODY, SAFE_W)


def grid(p: Painter, snap: Snapshot, m: Messages) -> None:
    state_key = {
        StationState.BUSY: "grid.busy",
        StationState.READY: "grid.ready",
        StationState.PAUSED: "grid.paused",
        StationState.NO_CONTENT: "grid.no_content",
        StationState.CHECKING_CONTENT: "grid.checking",
        StationState.ERROR: "grid.error",
    }.get(snap.state, "grid.ready")
    waiting = sum(1 for s in snap.slots if s.state is SlotState.WAITING)
    right = m("grid.done", n=snap.run_done)  # this run's; the totals page has all time
    if snap.feeding == "button" and waiting:
        right = m("grid.press_start", n=waiting)
    rw = p.text(60, 0, right, BODY, SAFE_W - 60, align="right")
    p.text(0, 0, m(state_key), BODY, SAFE_W - 60 - 2 if rw else SAFE_W)
    p.draw.line((0, 12, SAFE_W - 1, 12), fill=1)
    n = len(snap.slots)
    cols = 4
    rows = (n + cols - 1) // cols
    top = 14
    cell_h = min(24, (SAFE_H - top) // max(rows, 1))
    cell_w = SAFE_W // cols
    face = BODY if cell_h >= 16 else SMALL
    for i, slot in enumerate(snap.slots):
        r, c = divmod(i, cols)
        grid_cell(p, slot, c * cell_w, top + r * cell_h, cell_w - 1, cell_h - 1, face)


def detail(p: Painter, snap: Snapshot, m: Messages) -> None:
    slot = snap.slot(snap.selected or 1)
    p.draw.rectangle((0, 0, SAFE_W - 1, 12), fill=1)
    head = f"{m('detail.title', n=slot.number)}: {m(f'state.{slot.state}')}"
    p.text(1, 0, head, BODY, SAFE_W - 2, fill=0)
    y = 14
    if slot.state is SlotState.EMPTY:
        return
    if slot.state is SlotState.REJECTED:
        p.wrap(0, y, m(f"reject.{_reject_key(slot.reject_code)}"), BODY, SAFE_W, 4)
        return
    if slot.state is SlotState.NUMBERED:
        p.wrap(0, y, m("detail.numbered"), BODY, SAFE_W, 3)
        return
    size = size_text(slot.capacity)
    if slot.real_capacity is not None and slot.real_capacity < slot.capacity:
        size += " " + m("detail.real", size=size_text(slot.real_capacity))
    half = 64
    p.text(0, y, f"{m('detail.size')} {size}", BODY, half - 2 if slot.tier else SAFE_W)
    if slot.tier:
        p.text(half, y, f"{m('detail.tier')} {slot.tier}", BODY, SAFE_W - half, align="right")
    y += BODY.line
    if slot.state in (SlotState.FAILED, SlotState.REMOVED):
        p.wrap(0, y, reason_text(m, slot), BODY, SAFE_W, 3)
        return
    if slot.state in ACTIVE:
        p.text(0, y, f"{m('detail.speed')} {speed_text(m, slot.speed)}", BODY, SAFE_W)
        y += BODY.line + 1
        p.bar(0, y, SAFE_W, 9, slot.fraction)
        left = f"{m('detail.left')} {eta_text(m, slot.eta)}"
        lw = p.text(64, 51, left, BODY, SAFE_W - 64, align="right")
        p.text(0, 51, m("detail.progress", percent=slot.percent), BODY, SAFE_W - lw - 4)
    elif slot.state is SlotState.DONE:
        glyph(p, 0, y + 3, "done")
        p.text(10, y, m("detail.take_out"), BODY, SAFE_W - 10)


def totals(p: Painter, snap: Snapshot, m: Messages) -> None:
    y = title(p, m("totals.title_all" if snap.totals_all_time else "totals.title"))
    failed = sum(n for _, n in snap.totals_failed)
    p.text(0, y, f"{m('totals.done')} {snap.totals_done}", BODY, 62)
    p.text(64, y, f"{m('totals.failed')} {failed}", BODY, SAFE_W - 64, align="right")
    y += BODY.line
    lines = 3
    if snap.totals_all_time:  # the ledger's totals: the last line is the report export
        lines = 2
        p.text(0, y + 2 * BODY.line, m(f"report.{snap.report or 'hint'}"), BODY, SAFE_W)
    if not snap.totals_failed:
        p.text(0, y, m("totals.none"), BODY, SAFE_W)
        return
    rows = sorted(snap.totals_failed, key=lambda item: -item[1])
    if len(rows) > lines:  # the commonest, then the rest together
        rows = [*rows[: lines - 1], (FailReason.UNKNOWN, sum(n for _, n in rows[lines - 1 :]))]
    for reason, n in rows:
        p.text(6, y, m(f"short.{reason}"), BODY, 96)
        p.text(104, y, str(n), BODY, SAFE_W - 104, align="right")
        y += BODY.line


def error_config(p: Painter, snap: Snapshot, m: Messages) -> None:
    y = title(p, m("error.config"))
    e = snap.config_error
    if e is not None:  # file:line and the loader's message (English, ASCII: small face)
        where = e.file + (f":{e.line}" if e.line else "")
        p.text(0, y + 1, where, SMALL, SAFE_W, elide=True)
        for i, line in enumerate(wrap_words(e.message, SMALL, SAFE_W)[:2]):
            p.text(0, y + 1 + SMALL.line * (i + 1), line, SMALL, SAFE_W, elide=True)
    p.text(0, SAFE_H - BODY.line, m("error.config_fix"), BODY, SAFE_W)


def error_power(p: Painter, snap: Snapshot, m: Messages) -> None:
    y = title(p, m("error.power"))
    p.wrap(0, y, m("error.power_hint"), BODY, SAFE_W, 3)


def error_damaged(p: Painter, snap: Snapshot, m: Messages) -> None:
    y = title(p, m("error.damaged"))
    y = p.wrap(0, y, m("error.damaged_hint"), BODY, SAFE_W, 3)
    if snap.content.detail and y <= SAFE_H - BODY.line:
        p.text(0, SAFE_H - BODY.line, snap.content.detail, BODY, SAFE_W, elide=True)


def _reject_key(code: str) -> str:
    known = ("not_storage", "too_small", "too_large", "content_port", "beyond")
    return code if code in known else "other"


def error_rejected(p: Painter, snap: Snapshot, m: Messages) -> None:
    alert = snap.alert
    slot = alert.slot if alert else 0
    code = alert.code if alert else "other"
    y = title(p, m("error.rejected", slot=slot))
    p.wrap(0, y, m(f"reject.{_reject_key(code)}"), BODY, SAFE_W, 3)


def ports(p: Painter, snap: Snapshot, m: Messages) -> None:
    """MENU's last page: START numbers the ports again (when nothing is loading)."""
    y = title(p, m("ports.title")) + 1
    note = snap.ports_note
    done = note is not None and note[0] == "done"
    if note is not None and done:
        p.text(0, y, m("ports.done", n=note[1]), BODY, SAFE_W)
        y += BODY.line
    if snap.ports_blocked:
        p.wrap(0, y, m(f"ports.{snap.ports_blocked}"), BODY, SAFE_W, 2)
        return
    if not done:
        p.wrap(0, y, m("ports.hint"), BODY, SAFE_W, 2)
    p.text(0, SAFE_H - BODY.line, m("ports.start"), BODY, SAFE_W)


NOTES = {"saved": "ports.saved", "already": "ports.already", "fixed": "ports.fixed_port"}


def numbering(p: Painter, snap: Snapshot, m: Messages) -> None:
    """Numbering the ports: which number the next plugged port gets, what the last did."""
    y = title(p, m("ports.title")) + 2
    if snap.next_port is not None:
        p.text(0, y, m("ports.plug", n=snap.next_port), BODY, SAFE_W)
    note = snap.ports_note
    if note is not None and note[0] in NOTES:
        p.text(0, y + BODY.line + 4, m(NOTES[note[0]], n=note[1]), BODY, SAFE_W)
    p.text(0, SAFE_H - BODY.line, m("ports.finish"), BODY, SAFE_W)


def confirm(p: Painter, snap: Snapshot, m: Messages) -> None:
    c = snap.confirm
    question = m("confirm.all") if c is None or c.slot is None else m("confirm.slot", slot=c.slot)
    y = title(p, question)
    p.text(0, y + 6, m("confirm.yes"), BODY, SAFE_W)
    p.text(0, y + 8 + BODY.line, m("confirm.no"), BODY, SAFE_W)


def shutdown(p: Painter, snap: Snapshot, m: Messages) -> None:
    """MENU held: jobs being cancelled and recorded. Not yet safe to unplug."""
    y = title(p, m("shutdown.title"))
    p.wrap(0, y, m("shutdown.hint"), BODY, SAFE_W, 3)


def stopped(p: Painter, snap: Snapshot, m: Messages) -> None:
    """The orderly stop has ended (the ledger closed). The last frame before the Pi halts:
    the OLED keeps it while its 3.3 V stays on, so it must stay true after the halt."""
    y = title(p, m("shutdown.safe"))
    p.wrap(0, y, m("shutdown.safe_hint"), BODY, SAFE_W, 3)


def poweroff_failed(p: Painter, snap: Snapshot, m: Messages) -> None:
    y = title(p, m("shutdown.failed"))
    p.wrap(0, y, m("shutdown.failed_hint"), BODY, SAFE_W, 3)


Screen = Callable[[Painter, Snapshot, Messages], None]
SCREENS: dict[str, Screen] = {
    "splash": splash,
    "no_content": no_content,
    "checking": checking,
    "ready": ready,
    "grid": grid,
    "detail": detail,
    "totals": totals,
    "error_config": error_config,
    "error_power": error_power,
    "error_damaged": error_damaged,
    "error_rejected": error_rejected,
    "confirm": confirm,
    "shutdown": shutdown,
    "ports": ports,
    "numbering": numbering,
    "stopped": stopped,
    "poweroff_failed": poweroff_failed,
}


def choose(snap: Snapshot) -> str:
    """Which screen a snapshot shows (alerts and questions first, then the view, then state)."""
    if snap.state is StationState.SHUTTING_DOWN:
        return "shutdown"
    if snap.state is StationState.STOPPED:
        return "stopped"
    if snap.state is StationState.POWEROFF_FAILED:
        return "poweroff_failed"
    if snap.state is StationState.STARTING:
        return "splash"
    if snap.numbering:  # the operator's one task now; nothing else happens meanwhile
        return "numbering"
    if snap.confirm is not None:
        return "confirm"
    if snap.alert is not None:
        return "error_rejected"
    if snap.config_error is not None:
        return "error_config"
    if snap.state is StationState.ERROR:
        return "error_damaged"
    if snap.state is StationState.PAUSED and snap.undervoltage and snap.view == "main":
        return "error_power"
    if snap.view == "detail" and snap.selected is not None:
        return "detail"
    if snap.view == "totals":
        return "totals"
    if snap.view == "ports":
        return "ports"
    occupied = any(s.state is not SlotState.EMPTY for s in snap.slots)
    if snap.state is StationState.NO_CONTENT:
        return "no_content"
    if snap.state is StationState.CHECKING_CONTENT:
        return "checking"
    if snap.state is StationState.READY and not occupied:
        return "ready"
    return "grid"


@dataclass
class Frame:
    name: str
    image: Image.Image
    overflows: list[str]


def render(snap: Snapshot, m: Messages, name: str | None = None) -> Frame:
    """Draw the screen for ``snap`` (or the named one) into a fresh 1-bit image."""
    name = name or choose(snap)
    image = Image.new("1", (WIDTH, HEIGHT), 0)
    painter = Painter(ImageDraw.Draw(image))
    SCREENS[name](painter, snap, m)
    return Frame(name, image, painter.overflows)
