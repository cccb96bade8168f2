"""``content check``: size, names, tiers, playability and identifying metadata.

Media are generated with ffmpeg, the GPS tag written with exiftool and the
PDF made by Pillow then tagged with exiftool; the report must name each.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from appliance.cli import main
from appliance.content.check import (
    CheckReport,
    _probe,
    check_pack,
    identifying_fields,
    judge_media,
    sniff,
)
from appliance.content.walk import list_pack

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")
needs_exiftool = pytest.mark.skipif(shutil.which("exiftool") is None, reason="no exiftool")

SAMPLE_MP4 = Path(__file__).resolve().parent.parent / "appliance/data/sample/영상/시험 화면.mp4"


def ffmpeg(out: Path, *args: str) -> Path:
    base = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=5"]
    audio = ["-f", "lavfi", "-i", "sine=frequency=440"]
    cmd = [*base, *audio, "-t", "0.6", *args, "-map_metadata", "-1", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return out


def gps_jpeg(out: Path) -> Path:
    Image.new("RGB", (16, 16), (200, 10, 10)).save(out, "JPEG")
    subprocess.run(
        [
            "exiftool",
            "-q",
            "-overwrite_original",
            "-GPSLatitude=38.9",
            "-GPSLatitudeRef=N",
            "-GPSLongitude=125.7",
            "-GPSLongitudeRef=E",
            "-Make=TestCam",
            str(out),
        ],
        check=True,
        timeout=60,
    )
    return out


def authored_pdf(out: Path) -> Path:
    Image.new("RGB", (16, 16), (255, 255, 255)).save(out, "PDF")
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", "-Author=Kim Volunteer", str(out)],
        check=True,
        timeout=60,
    )
    return out


@needs_ffmpeg
def test_playability_judged_by_codec_not_extension(tmp_path: Path) -> None:
    root = tmp_path / "c"
    root.mkdir()
    shutil.copy(SAMPLE_MP4, root / "good.mp4")
    ffmpeg(root / "xvid.avi", "-c:v", "mpeg4", "-c:a", "libmp3lame")
    ffmpeg(root / "hevc.mkv", "-c:v", "libx265", "-x265-params", "log-level=none", "-c:a", "aac")
    ffmpeg(root / "disguised.mp4", "-c:v", "libvpx-vp9", "-c:a", "libopus", "-f", "webm")
    report = CheckReport()
    _probe(list_pack(root).files, report, shutil.which, None)
    text = "\n".join(w for w in report.warnings if "players may not play" in w)
    assert "good.mp4" not in text
    assert "xvid.avi" not in text
    assert "hevc.mkv: players may not play it: video codec HEVC" in text
    assert "disguised.mp4: players may not play it: video codec VP9" in text
    assert "disguised.mp4: players may not play it: audio codec OPUS" in text


def test_judge_media_rules() -> None:
    ok = {
        "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "tags": {"major_brand": "isom"}},
        "streams": [
            {"codec_type": "video", "codec_name": "h264", "pix_fmt": "yuv420p", "width": 1280},
            {"codec_type": "audio", "codec_name": "aac"},
            {"codec_type": "subtitle", "codec_name": "mov_text"},
        ],
    }
    assert judge_media(ok) == []
    mov = {**ok, "format": {"format_name": "mov,mp4", "tags": {"major_brand": "qt  "}}}
    assert any("QuickTime" in p for p in judge_media(mov))
    ten_bit = {
        "format": {"format_name": "matroska,webm"},
        "streams": [{"codec_type": "video", "codec_name": "h264", "pix_fmt": "yuv420p10le"}],
    }
    assert any("8-bit" in p for p in judge_media(ten_bit))
    wmv = {
        "format": {"format_name": "asf", "format_long_name": "ASF (Advanced / Active Streaming)"},
        "streams": [{"codec_type": "video", "codec_name": "wmv3"}],
    }
    problems = judge_media(wmv)
    assert any("container ASF" in p for p in problems)
    assert any("WMV3" in p for p in problems)
    mp3 = {
        "format": {"format_name": "mp3"},
        "streams": [{"codec_type": "audio", "codec_name": "mp3"}],
    }
    assert judge_media(mp3) == []


def test_sniff() -> None:
    here = Path(__file__).resolve().parent.parent / "appliance/data/sample"
    assert sniff(here / "읽어 보세요.txt") == "text"
    assert sniff(here / "사진/시험 그림.png") == "image"
    assert sniff(SAMPLE_MP4) == "other"


def test_identifying_fields_filter() -> None:
    tags = {
        "SourceFile": "x.jpg",
        "System:FileName": "x.jpg",
        "IFD0:Make": "Canon",
        "IFD0:Model": "EOS",
        "ExifIFD:SerialNumber": "123",
        "GPS:GPSVersionID": "2 3 0 0",
        "GPS:GPSLatitude": "38 deg 54' 0.00\" N",
        "PDF:Author": "Kim",
        "XMP-xmp:CreatorTool": "Word",
        "IFD0:ImageWidth": 16,
    }
    got = dict(identifying_fields(tags))
    assert set(got) == {
        "IFD0:Make",
        "IFD0:Model",
        "ExifIFD:SerialNumber",
        "GPS:GPSLatitude",
        "PDF:Author",
        "XMP-xmp:CreatorTool",
    }


@needs_exiftool
def test_metadata_reported_with_field_and_value(tmp_path: Path) -> None:
    root = tmp_path / "c"
    root.mkdir()
    gps_jpeg(root / "사진.jpg")
    authored_pdf(root / "책.pdf")
    (root / "clean.txt").write_text("Author: this is text, not metadata\n")
    report = CheckReport()
    _probe(list_pack(root).files, report, shutil.which, None)
    text = "\n".join(report.warnings)
    assert "사진.jpg: identifying metadata GPS:GPSLatitude = 38 deg 54' 0.00\"" in text
    assert "사진.jpg: identifying metadata IFD0:Make = TestCam" in text
    assert "책.pdf: identifying metadata PDF:Author = Kim Volunteer" in text
    assert "clean.txt" not in text


def test_missing_tools_said_clearly(tmp_path: Path) -> None:
    root = tmp_path / "c"
    root.mkdir()
    (root / "a.bin").write_bytes(b"\x00\x01\x02")
    report = CheckReport()
    _probe(list_pack(root).files, report, lambda name: None, None)
    text = "\n".join(report.warnings)
    assert "ffprobe not found: media files were NOT checked" in text
    assert "exiftool not found: files were NOT checked for identifying metadata" in text


@needs_exiftool
def test_acceptance_big_file_gps_jpeg_and_author_pdf(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "c"
    root.mkdir()
    big = root / "big.bin"
    with open(big, "wb") as f:
        f.truncate(int(4.1 * 1024**3))  # sparse: no disk used
    gps_jpeg(root / "photo.jpg")
    authored_pdf(root / "doc.pdf")
    rc = main(["content", "check", str(root)])
    out = capsys.readouterr().out
    assert rc == 1
    assert "error: big.bin: 4.4 GB; FAT32 cannot hold files of 4 GiB or more" in out
    assert "warning: photo.jpg: identifying metadata GPS:GPSLatitude" in out
    assert "warning: doc.pdf: identifying metadata PDF:Author = Kim Volunteer" in out


def test_check_reports_fat_names_and_tier_fit(tmp_path: Path) -> None:
    root = tmp_path / "c"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.txt").write_bytes(b"x" * 1000)
    (root / "b").mkdir()
    (root / "b" / "x.txt").write_bytes(b"x")
    (root / "b" / "X.TXT").write_bytes(b"y")
    (root / "bad:name.txt").write_bytes(b"z")
    (root / "big").mkdir()
    (root / "big" / "f.bin").write_bytes(b"\x00" * 10)
    with open(root / "big" / "huge.bin", "wb") as f:
        f.truncate(200 * 1024**2)
    tiers = [
        {"name": "tiny", "min_capacity": 64 * 1024**2, "items": ["a"]},
        {"name": "small", "min_capacity": 128 * 1024**2, "items": ["big"]},
    ]
    report = check_pack(root, headroom=0.02, tiers_raw=tiers, probe=False)
    text = "\n".join(report.errors)
    assert "bad:name.txt: the name contains characters FAT cannot hold: ':'" in text
    assert "b/x.txt: differs from 'X.TXT' only in case" in text
    assert "tier 'small'" in text and "tier 'tiny'" not in text
    assert "warning" not in text
