"""A sealed pack through the engine: tiers per target, streaming hash check, SSD pulled.

``flashstation load`` runs in-process on image files; mtools (an independent
FAT reader) judges what reached each "stick". The damaged-file and
SSD-removed cases use the engine's fault targets (throttled FaultyTarget) and
real FAT32 plans; a failed batch must leave every drive without a partition
table (sector 0 zero: blank-looking).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.content import Pack, keys, open_pack
from appliance.content.mount import as_removed
from appliance.content.planner import allocate
from appliance.content.seal import PackInfo, seal
from appliance.content.stream import StreamChecker
from appliance.drives.fake import Faults, FaultyTarget, file_target, make_image
from appliance.engine import Job, LoadOptions, start_batch
from appliance.fat32 import compile_plan
from tests.content_helpers import make_key
from tests.enginekit import make_content
from tests.fat32_oracles import mcopy_extract

pytestmark = pytest.mark.timeout(180)

DATA = Path(__file__).resolve().parent.parent / "appliance" / "data"
SAMPLE = DATA / "sample-pack"
TEST_PUB = DATA / "test-keys" / "sample-pack-TEST-ONLY.key.pub"
MiB = 1024**2


def sector0(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(512)


def files_under(root: Path) -> dict[str, bytes]:
    return {
        "/".join(p.relative_to(root).parts): p.read_bytes() for p in root.rglob("*") if p.is_file()
    }


def load(*args: str) -> int:
    return main(["load", "--wipe", "quick", *args])


def test_load_sealed_pack_gives_each_target_its_tier(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sizes = {"a.img": 64 * MiB, "b.img": 100 * MiB, "c.img": 128 * MiB}
    targets = [str(make_image(tmp_path / n, s)) for n, s in sizes.items()]
    argv = ["--content", str(SAMPLE), "--trusted-key", str(TEST_PUB)]
    assert load(*argv, *(x for t in targets for x in ("--target", t))) == 0
    err = capsys.readouterr().err
    assert "signed by key c1cc7b490d5d962c" in err
    assert "a.img: tier 'basic'" in err and "c.img: tier 'more'" in err
    pack = open_pack(SAMPLE, keys.load_trusted([TEST_PUB]))
    want = {
        i: {e.path: (SAMPLE / e.path).read_bytes() for e in pack.manifest.tier_files(i)}
        for i in (0, 1)
    }
    for name, tier in (("a.img", 0), ("b.img", 0), ("c.img", 1)):
        got = files_under(mcopy_extract(tmp_path / name, tmp_path / f"{name}.out"))
        assert got == want[tier], name
        assert "manifest.yaml" not in got and "manifest.yaml.sig" not in got


def test_load_refuses_untrusted_pack_before_touching_drives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = make_image(tmp_path / "t.img", 64 * MiB, fill=b"DONOR")
    before = sector0(target)
    _, stranger = make_key(tmp_path, "stranger.key")
    rc = load("--content", str(SAMPLE), "--trusted-key", str(stranger), "--target", str(target))
    assert rc == 1
    assert "manifest.yaml.sig: signature does not match" in capsys.readouterr().err
    assert sector0(target) == before
    rc = load("--content", str(SAMPLE), "--target", str(target))
    assert rc == 1
    assert "no trusted keys" in capsys.readouterr().err
    assert sector0(target) == before


def test_load_refuses_pack_with_missing_file_before_touching_drives(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_content(tmp_path / "ssd", [1000, 2000])[0][0].parent
    private, public = make_key(tmp_path)
    seal(root, private)
    victim = sorted(root.glob("*.bin"))[0]
    victim.unlink()
    target = make_image(tmp_path / "t.img", 64 * MiB, fill=b"DONOR")
    rc = load("--content", str(root), "--trusted-key", str(public), "--target", str(target))
    assert rc == 1
    assert f"missing: {victim.name}" in capsys.readouterr().err
    assert sector0(target) == b"DONOR" * 102 + b"DO"


def test_load_plain_folder_still_loads_whole(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    make_content(root / "films", [3000, 0])
    target = make_image(tmp_path / "t.img", 64 * MiB)
    assert load("--content", str(root), "--target", str(target)) == 0
    got = files_under(mcopy_extract(target, tmp_path / "out"))
    assert got == files_under(root)


@pytest.fixture
def big_pack(tmp_path: Path) -> tuple[Pack, Path]:
    root = tmp_path / "ssd"
    make_content(root / "films", [6 * MiB + 5, 5 * MiB, 4 * MiB])
    (root / "읽어 보세요.txt").write_text("안녕하세요\n", encoding="utf-8")
    private, public = make_key(tmp_path)
    tiers = [
        {
            "name": "small",
            "min_capacity": "64MiB",
            "items": ["읽어 보세요.txt", "films/file00.bin"],
        },
        {"name": "large", "min_capacity": "100MiB", "items": ["films"]},
    ]
    seal(root, private, PackInfo(tiers_raw=tiers))
    return open_pack(root, keys.load_trusted([public])), root


def jobs_for(pack: Pack, tmp_path: Path, slow: bool = True) -> tuple[list[Job], list[Path]]:
    caps = {"s1": 64 * MiB, "s2": 128 * MiB, "s3": 128 * MiB}
    alloc = allocate(pack, caps, headroom=0.02)
    assert {g.tier.name for g in alloc.groups} == {"small", "large"}
    jobs, images = [], []
    for group in alloc.groups:
        for name in group.targets:
            image = make_image(tmp_path / f"{name}.img", caps[name], fill=b"DONOR")
            images.append(image)
            target = file_target(image)
            if slow:
                target = FaultyTarget(target, Faults(throttle=40 * MiB))
            jobs.append(Job(target, compile_plan(group.tree, caps[name]), name=name))
    return jobs, images


OPTS = LoadOptions(wipe="quick", buffer_budget=4 * MiB)


def test_damaged_file_on_the_ssd_fails_the_batch_blank(
    big_pack: tuple[Pack, Path], tmp_path: Path
) -> None:
    pack, root = big_pack
    assert pack.verify() == []  # verified on insertion ...
    victim = root / "films" / "file01.bin"
    with open(victim, "r+b") as f:  # ... then one byte rots (same size, same name)
        f.seek(3 * MiB)
        byte = f.read(1)
        f.seek(3 * MiB)
        f.write(bytes([byte[0] ^ 0x40]))
    jobs, images = jobs_for(pack, tmp_path)
    batch = start_batch(jobs, OPTS, observer=pack.stream_checker())
    results = batch.wait(120)
    assert (
        batch.error
        == "content SSD damaged: films/file01.bin (contents differ from the signed hash)"
    )
    assert [r.status for r in results] == ["failed"] * 3
    assert all("content SSD damaged: films/file01.bin" in r.reason for r in results)
    for image in images:
        assert sector0(image) == bytes(512)  # blank-looking, never a half-loaded stick


def test_intact_pack_through_faulty_targets_passes(
    big_pack: tuple[Pack, Path], tmp_path: Path
) -> None:
    pack, _ = big_pack
    checker = pack.stream_checker()
    jobs, images = jobs_for(pack, tmp_path, slow=False)
    results = start_batch(jobs, OPTS, observer=checker).wait(120)
    assert all(r.ok for r in results), [r.reason for r in results]
    assert checker.files_checked == len(pack.manifest.files)  # each file hashed once
    assert all(sector0(i) != bytes(512) for i in images)


class PullsTheSsd:
    """Delegates to the real checker; pulls the SSD (empties the mount point) mid-batch."""

    def __init__(self, inner: StreamChecker, root: Path, away: Path) -> None:
        self.inner, self.root, self.away = inner, root, away
        self.pulled = False
        self.seen: set[Path] = set()

    def chunk(self, source: Path, offset: int, data: bytes) -> None:
        self.inner.chunk(source, offset, data)
        self.seen.add(source)
        # Pull once the reader is on the third file: the reader runs at most the
        # 4 MiB window ahead of the targets, so they are writing by then.
        if len(self.seen) >= 3 and not self.pulled:
            self.pulled = True
            os.rename(self.root, self.away)

    def file_done(self, source: Path) -> None:
        self.inner.file_done(source)


def test_ssd_removed_mid_batch_fails_cleanly(big_pack: tuple[Pack, Path], tmp_path: Path) -> None:
    pack, root = big_pack
    jobs, images = jobs_for(pack, tmp_path)
    observer = PullsTheSsd(pack.stream_checker(), root, tmp_path / "pulled")
    batch = start_batch(jobs, OPTS, observer=observer)
    results = batch.wait(120)
    assert observer.pulled
    assert [r.status for r in results] == ["failed"] * 3
    assert all("content SSD removed" in r.reason for r in results), [r.reason for r in results]
    for image in images:
        assert sector0(image) == bytes(512)
    # The station's view: reading the pulled SSD is a removal, not damage.
    assert as_removed(FileNotFoundError(2, "gone"), root) is not None
