"""Every real udev dump in the corpus gets its expected verdict, through the CLI too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.hotplug.classify import Classifier, Context, Verdict
from appliance.hotplug.device import DeviceInfo
from appliance.hotplug.props import read_dump

CORPUS = Path(__file__).parent / "fixtures" / "udev"

# file -> (expected verdict, rule, size the source reports in bytes or None, mounted)
EXPECTED: dict[str, tuple[str, str, int | None, bool]] = {
    "acasis-quad-sata-hat-pi4-uas.udev": ("ignore", "disk_model", 2 * 1000**4, False),
    "amazon-fire-tablet-usb-device.udev": ("ignore", "not_block", None, False),
    "asmedia-asm2464-nvme-enclosure.udev": ("ignore", "ata_bridge", None, False),
    "asmedia-sata-bridge-usb-device.udev": ("ignore", "not_block", None, False),
    "buffalo-stick-pi2-hub.udev": ("target", "usb_flash", 512 * 1000**2, False),
    "genesys-card-reader-with-card.udev": ("target", "usb_flash", None, False),
    "genesys-card-reader-no-media-2011.udev": ("ignore", "no_media", None, False),
    "hgst-hdd-jmicron-lun2.udev": ("ignore", "disk_model", 6 * 1000**4, False),
    "hlds-usb-dvd-generic-type.udev": ("ignore", "optical", None, False),
    "jmicron-152d-0567-sata-pi4.udev": ("ignore", "ata_bridge", 3907029168 * 512, False),
    "kingston-dt101ii-stick.udev": ("target", "usb_flash", 15679488 * 512, False),
    "kingston-dtg3-partition-pi3.udev": ("ignore", "partition", None, False),
    "pepperc-kvm-virtual-disc.udev": ("ignore", "virtual_media", None, False),
    "pi3-sd-mmcblk0.udev": ("system", "mounted", 16 * 1000**3, True),
    "pny-usb2-fd-stick.udev": ("target", "usb_flash", 31405824 * 512, False),
    "rtsx-pci-sd-mmcblk0.udev": ("ignore", "not_usb", 64 * 1000**3, False),
    "rtsx-usb-sd-partition.udev": ("ignore", "partition", None, False),
    "sabrent-via-sata-adapter.udev": ("ignore", "ata_bridge", None, False),
    "sandisk-cruzer-slide-partition-2009.udev": ("ignore", "partition", 2006825 * 1024, False),
    "sandisk-usb-key-2007-udevmonitor.udev": ("target", "usb_flash", None, False),
    "sandisk-sata-ssd-internal.udev": ("ignore", "not_usb", 500 * 1000**3, False),
    "transcend-jetflash-partial.udev": ("ignore", "partition", None, False),
    "tsstcorp-bd-usb-optical.udev": ("ignore", "optical", None, False),
    "wd-mybook-partition.udev": ("ignore", "partition", 999494866944, False),
}
# Plain flash sticks and cards with media: the acceptance says these are targets.
STICKS_AND_CARDS = {
    "buffalo-stick-pi2-hub.udev",
    "genesys-card-reader-with-card.udev",
    "kingston-dt101ii-stick.udev",
    "pny-usb2-fd-stick.udev",
    "sandisk-usb-key-2007-udevmonitor.udev",
}


def test_table_covers_the_whole_corpus() -> None:
    assert {p.name for p in CORPUS.glob("*.udev")} == set(EXPECTED)


def test_every_fixture_names_its_source() -> None:
    for path in CORPUS.glob("*.udev"):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# source: "), path.name
        assert path.name in (CORPUS / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("with_size", [True, False])
def test_expected_verdict(name: str, with_size: bool) -> None:
    verdict, rule, size, mounted = EXPECTED[name]
    dev = DeviceInfo(read_dump(CORPUS / name), size=size if with_size else None, mounted=mounted)
    decision = Classifier(Context()).classify(dev)
    assert (decision.verdict, decision.rule) == (verdict, rule), decision.reason
    assert decision.reason


def test_no_non_target_is_ever_a_target_whatever_the_size() -> None:
    """A size inside the accepted range must not turn a disk, drive or partition into a target."""
    for name, (verdict, _, _, mounted) in EXPECTED.items():
        if verdict == "target":
            continue
        for size in (None, 8 * 1000**3, 32 * 1000**3):
            dev = DeviceInfo(read_dump(CORPUS / name), size=size, mounted=mounted)
            assert Classifier().classify(dev).verdict != Verdict.TARGET, name
            dev = DeviceInfo(read_dump(CORPUS / name), size=size, mounted=False)
            assert Classifier().classify(dev).verdict != Verdict.TARGET, name


def test_sticks_and_cards_are_targets_and_mounting_makes_them_system() -> None:
    for name in STICKS_AND_CARDS:
        dev = DeviceInfo(read_dump(CORPUS / name), size=16 * 1000**3)
        assert Classifier().classify(dev).verdict == Verdict.TARGET, name
        dev = DeviceInfo(read_dump(CORPUS / name), size=16 * 1000**3, mounted=True)
        assert Classifier().classify(dev).verdict == Verdict.SYSTEM, name


def test_cli_classify_prints_one_json_object_per_file(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(CORPUS / name) for name in sorted(EXPECTED)]
    assert main(["devices", "classify", *files]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(files)
    for line, path in zip(lines, files, strict=True):
        row = json.loads(line)
        assert set(row) == {"file", "verdict", "rule", "reason"}
        assert row["file"] == path
        expected_verdict, _, _, mounted = EXPECTED[Path(path).name]
        if not mounted:
            assert row["verdict"] == expected_verdict


def test_cli_size_and_mounted_options(capsys: pytest.CaptureFixture[str]) -> None:
    stick = str(CORPUS / "kingston-dt101ii-stick.udev")
    assert main(["devices", "classify", stick, "--size", "100MB"]) == 0
    assert json.loads(capsys.readouterr().out)["rule"] == "too_small"
    assert main(["devices", "classify", stick, "--size", "2TB"]) == 0
    assert json.loads(capsys.readouterr().out)["rule"] == "too_large"
    assert main(["devices", "classify", stick, "--size", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["rule"] == "no_media"
    assert main(["devices", "classify", stick, "--mounted"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "system"


def test_cli_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.udev"
    bad.write_text("this is not a dump\n")
    assert main(["devices", "classify", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.udev:1" in err
    assert main(["devices", "classify", str(tmp_path / "missing.udev")]) == 1
    assert main(["devices", "classify", str(bad), "--size", "lots"]) == 2


def test_serials_never_reach_cli_output(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(CORPUS.glob("*.udev"))
    main(["devices", "classify", *map(str, files), "--size", "8GB"])
    out = capsys.readouterr().out
    for path in files:
        serial = read_dump(path).get("ID_SERIAL_SHORT")
        if serial:
            assert serial not in out, path.name


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from appliance.hotplug.props import DumpError, parse_dump  # noqa: E402


@given(st.text())
def test_parse_dump_accepts_or_refuses_cleanly(text: str) -> None:
    try:
        props = parse_dump(text)
    except DumpError as exc:
        assert "\n" not in str(exc)
    else:
        assert props and all(key and "=" not in key for key in props)


def test_parse_dump_forms() -> None:
    text = "# c\n\nP: /devices/x\nE: A=1\nB='two words'\nC=x=y\nN: sda\n"
    assert parse_dump(text) == {"A": "1", "B": "two words", "C": "x=y"}
