"""The simulator: the acceptance session replays to the right slot states and golden frames."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from appliance.cli import main
from appliance.ui.simulator import DEMO_SCRIPT, ScriptError, Simulator, run_script
from appliance.ui.terminal import to_text

REFERENCE = Path(__file__).resolve().parent / "reference" / "demo"
REGENERATE = os.environ.get("FLASHSTATION_REGENERATE") == "1"
EXPECTED = {
    1: "done",
    2: "removed:removed",
    3: "failed:fake_capacity",
    4: "done",
    5: "done",
    6: "empty",
    7: "empty",
    8: "empty",
}


@pytest.mark.parametrize("language", ["en", "ko"])
def test_acceptance_session_states_and_frames(language: str, tmp_path: Path) -> None:
    result = run_script(DEMO_SCRIPT, tmp_path / "frames", language)
    assert result.failures == []
    assert result.slots == EXPECTED
    assert len(result.frames) == 14
    problems = []
    for name, image in result.frames.items():
        golden = REFERENCE / language / f"{name}.png"
        if REGENERATE:
            golden.parent.mkdir(parents=True, exist_ok=True)
            image.save(golden)
            continue
        expected = Image.open(golden).convert("L")
        bbox = ImageChops.difference(expected, image.convert("L")).getbbox()
        if bbox is not None:
            problems.append(f"{name}: differs in {bbox}")
    if REGENERATE:
        pytest.fail("regenerated demo goldens; run again without FLASHSTATION_REGENERATE")
    assert problems == []
    assert (tmp_path / "frames" / "0001.png").exists()  # every change saved too


def test_images_are_the_sticks(tmp_path: Path) -> None:
    sim = Simulator(workdir=tmp_path)
    try:
        sim.plug(2, 8 * 1000**3)
        assert sim.image_path(2).stat().st_size == 8 * 1000**3
        assert sim.image_path(2).stat().st_blocks == 0  # sparse
        sim.pull(2)
        assert not sim.image_path(2).exists()
        with pytest.raises(ScriptError):
            sim.pull(2)
    finally:
        sim.close()


def test_continuous_feeding_in_the_simulator(tmp_path: Path) -> None:
    sim = Simulator(workdir=tmp_path, batch_window=1.0, speed=1e9)
    try:
        sim.insert_content()
        sim.advance(5)
        sim.plug(1, 32 * 1000**3)
        sim.advance(4)
        sim.plug(2, 8 * 1000**3)  # while slot 1 is still wiping
        sim.advance(16)
        snap = sim.station.snapshot()
        assert str(snap.slot(2).state) == "done"
        assert str(snap.slot(1).state) != "done"
        assert len(sim.sim_loader.batches) == 2
    finally:
        sim.close()


def test_bad_script_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "bad.yaml"
    script.write_text("events:\n  - {at: 1, plug: {slot: 1}}\n")
    assert main(["demo", "--headless", "--script", str(script)]) == 1
    err = capsys.readouterr().err
    assert "event 1: plug needs slot and size" in err


def test_expectation_failure_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "s.yaml"
    script.write_text("events:\n  - {at: 0, content: insert}\nexpect: {1: done}\n")
    assert main(["demo", "--headless", "--script", str(script)]) == 1
    assert "slot 1: expected done, got empty" in capsys.readouterr().err


def test_make_demo_without_terminal_runs_headless(capsys: pytest.CaptureFixture[str]) -> None:
    # pytest's stdin is not a terminal, as in CI
    assert main(["demo"]) == 0
    assert "slot 3: failed:fake_capacity" in capsys.readouterr().out


def test_terminal_half_blocks() -> None:
    image = Image.new("1", (4, 4))
    image.putpixel((0, 0), 1)
    image.putpixel((1, 1), 1)
    image.putpixel((2, 0), 1)
    image.putpixel((2, 1), 1)
    assert to_text(image) == ["▀▄█ ", "    "]
