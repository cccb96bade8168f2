"""write_atomic: the old file or the new one, never a torn one; the temporary file never stays."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from appliance import fileio


def test_replaces_whole_with_mode_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    fileio.write_atomic(target, "새 내용 ✓")
    assert target.read_text(encoding="utf-8") == "새 내용 ✓"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    fileio.write_atomic(target, b"\x00\x01", mode=0o644)
    assert target.read_bytes() == b"\x00\x01"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    synced: list[int] = []

    def failing_fsync(fd: int) -> None:
        synced.append(fd)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="Input/output"):
        fileio.write_atomic(target, "new")
    assert synced, "the data was never flushed before the rename"
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_the_rename_is_flushed_after_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        order.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        order.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    fileio.write_atomic(tmp_path / "x", "data")
    assert order == ["file", "rename", "dir"]
