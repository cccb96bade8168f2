"""End to end without the engine: sample pack -> tier per capacity -> FAT32 image -> mtools.

mtools (an independent FAT reader) must find exactly the tier's files, byte
for byte, and never ``manifest.yaml`` or its signature; fsck.fat must accept
the image.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance import fat32
from appliance.content import keys, open_pack
from appliance.content.planner import allocate
from tests.fat32_oracles import fsck, mcopy_extract

DATA = Path(__file__).resolve().parent.parent / "appliance" / "data"
PACK = DATA / "sample-pack"
TEST_PUB = DATA / "test-keys" / "sample-pack-TEST-ONLY.key.pub"
MiB = 1024**2


def files_under(root: Path) -> dict[str, bytes]:
    return {
        "/".join(p.relative_to(root).parts): p.read_bytes() for p in root.rglob("*") if p.is_file()
    }


def test_sample_pack_tiers_reach_images_exactly(tmp_path: Path) -> None:
    pack = open_pack(PACK, keys.load_trusted([TEST_PUB]))
    capacities = {"small": 100 * MiB, "large": 128 * MiB, "too small": 60 * MiB}
    alloc = allocate(pack, capacities, headroom=0.02)
    assert {g.tier.name: g.targets for g in alloc.groups} == {
        "basic": ("small",),
        "more": ("large",),
    }
    assert set(alloc.unfit) == {"too small"}
    expected_all = {e.path: (PACK / e.path).read_bytes() for e in pack.manifest.files}
    for group in alloc.groups:
        for target in group.targets:
            image = tmp_path / f"{target}.img"
            fat32.write_image(fat32.compile_plan(group.tree, capacities[target]), image)
            fsck(image, tmp_path)
            got = files_under(mcopy_extract(image, tmp_path / f"{target}-out"))
            want = {
                p: expected_all[p]
                for p in (e.path for e in pack.manifest.tier_files(group.tier_index))
            }
            assert got == want
            assert "manifest.yaml" not in got and "manifest.yaml.sig" not in got


@pytest.mark.parametrize("capacity", [64 * MiB])
def test_smallest_drive_gets_basic(capacity: int) -> None:
    pack = open_pack(PACK, keys.load_trusted([TEST_PUB]))
    alloc = allocate(pack, {"d": capacity}, headroom=0.02)
    assert [g.tier.name for g in alloc.groups] == ["basic"]
