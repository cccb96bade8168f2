"""``flashstation make-image`` and ``inspect`` end to end."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.cli import main
from tests.fat32_oracles import assert_readers_agree


def put(root: Path, rel: str, data: bytes = b"x") -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_make_image_and_inspect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    put(src, "영화/프렌즈 시즌1/에피소드 01.mp4", os.urandom(10_000))
    put(src, "readme.txt", b"hello")
    put(src, ".DS_Store", b"junk")
    out = tmp_path / "out.img"
    assert main(["make-image", "--content", str(src), "--capacity", "64MiB", str(out)]) == 0
    err = capsys.readouterr().err
    assert "skipped hidden or system file .DS_Store" in err
    assert out.stat().st_size == 64 * 1024 * 1024
    assert out.stat().st_blocks * 512 < 4 * 1024 * 1024  # sparse
    (src / ".DS_Store").unlink()
    assert_readers_agree(out, src, tmp_path / "check")
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "type 0x0C" in text
    assert "에피소드 01.mp4  10000 bytes" in text
    assert "label (none)" in text


@pytest.mark.parametrize(
    ("setup", "capacity", "fragment"),
    [
        (lambda s: put(s, "big.bin", os.urandom(10)), "1MiB", "smaller than the minimum"),
        (lambda s: put(s, "a?.txt"), "64MiB", "cannot hold"),
        (lambda s: os.mkfifo(s / "fifo"), "64MiB", "named pipe"),
    ],
)
def test_refusals_write_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    setup: object,
    capacity: str,
    fragment: str,
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    setup(src)  # type: ignore[operator]
    out = tmp_path / "out.img"
    assert main(["make-image", "--content", str(src), "--capacity", capacity, str(out)]) == 1
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [src]


def test_content_larger_than_capacity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "big.bin", "wb") as f:
        f.truncate(70 * 1024 * 1024)
    out = tmp_path / "out.img"
    assert main(["make-image", "--content", str(src), "--capacity", "64MiB", str(out)]) == 1
    err = capsys.readouterr().err
    assert "content of 73.4 MB" in err and "target of 67.1 MB" in err
    assert not out.exists()


def test_bad_size_is_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["make-image", "--content", str(tmp_path), "--capacity", "8XB", "o.img"]) == 2
    assert "unknown size unit" in capsys.readouterr().err


def test_demo_builds_and_checks_the_sample(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--image"]) == 0
    out = capsys.readouterr().out
    assert "세계인권선언 제1조.txt" in out
    assert "fsck.fat -n: exit status 0" in out


def test_progress_shown_for_big_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "film.mp4").write_bytes(os.urandom(1024) * (70 * 1024))
    out = tmp_path / "out.img"
    assert main(["make-image", "--content", str(src), "--capacity", "128MiB", str(out)]) == 0
    err = capsys.readouterr().err
    assert "writing" in err and "(100%)" in err
    out.unlink()


def test_output_must_be_a_regular_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    put(src, "a.txt")
    for out, fragment in [
        ("/dev/null", "not a regular file"),
        (str(tmp_path), "not a regular file"),
        (str(tmp_path / "missing" / "o.img"), "does not exist"),
    ]:
        assert main(["make-image", "--content", str(src), "--capacity", "64MiB", out]) == 2
        assert fragment in capsys.readouterr().err
    assert Path("/dev/null").is_char_device()
