"""Tier choice per target: boundaries, headroom, fallback, shared trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.content import Pack, keys, open_pack
from appliance.content.manifest import Tier
from appliance.content.planner import allocate, choose_tier, usable_capacity
from appliance.content.seal import PackInfo, seal
from appliance.fat32.plan import ContentFile, ContentTree
from tests.content_helpers import make_key, make_tree

GB = 1000**3


def overhead_fits(tree: ContentTree, capacity: int, options: object) -> bool:
    """A stand-in layout rule for unit tests: 1 MiB of overhead plus the bytes."""
    return tree.total_bytes + 1024**2 <= capacity


@pytest.fixture
def pack(tmp_path: Path) -> Pack:
    root = make_tree(
        tmp_path / "pack",
        {"a/1.txt": b"1" * 1000, "b/2.txt": b"2" * 2000, "c.txt": b"3" * 4000},
    )
    private, public = make_key(tmp_path)
    tiers = [
        {"name": "4GB", "min_capacity": 4 * GB, "items": ["a"]},
        {"name": "8GB", "min_capacity": 8 * GB, "items": ["b"]},
        {"name": "16GB", "min_capacity": 16 * GB, "items": ["c.txt"]},
    ]
    seal(root, private, PackInfo(tiers_raw=tiers))
    return open_pack(root, keys.load_trusted([public]))


@pytest.mark.parametrize(
    ("capacity", "expected"),
    [
        (4 * GB - 1, None),
        (4 * GB, 0),
        (8 * GB - 1, 0),
        (8 * GB, 1),
        (16 * GB - 1, 1),
        (16 * GB, 2),
        (256 * GB, 2),
    ],
)
def test_tier_boundaries(pack: Pack, capacity: int, expected: int | None) -> None:
    got = choose_tier(pack, capacity, headroom=0.02, fits=overhead_fits)
    assert got == expected


def test_nested_tiers_accumulate(pack: Pack) -> None:
    sizes = [pack.content_tree(i).total_bytes for i in range(3)]
    assert sizes == [1000, 3000, 7000]
    names = {f.relpath for f in pack.content_tree(2).files}
    assert names == {("a", "1.txt"), ("b", "2.txt"), ("c.txt",)}


def test_tier_that_does_not_fit_falls_back(pack: Pack) -> None:
    def only_small(tree: ContentTree, capacity: int, options: object) -> bool:
        return tree.total_bytes <= 3000

    assert choose_tier(pack, 100 * GB, headroom=0.0, fits=only_small) == 1


def test_headroom_is_applied_to_the_capacity(pack: Pack) -> None:
    seen: list[int] = []

    def spy(tree: ContentTree, capacity: int, options: object) -> bool:
        seen.append(capacity)
        return True

    choose_tier(pack, 10 * GB, headroom=0.05, fits=spy)
    assert seen == [int(9.5 * GB), 10 * GB]  # less headroom, then the real capacity


def test_allocate_groups_targets_and_shares_trees(pack: Pack) -> None:
    caps = {"s1": 4 * GB, "s2": 8 * GB, "s3": 32 * GB, "s4": 9 * GB, "s5": 1 * GB}
    alloc = allocate(pack, caps, headroom=0.02, fits=overhead_fits)
    got = {g.tier.name: g.targets for g in alloc.groups}
    assert got == {"4GB": ("s1",), "8GB": ("s2", "s4"), "16GB": ("s3",)}
    assert set(alloc.unfit) == {"s5"}
    assert "too small for the smallest tier '4GB'" in alloc.unfit["s5"]
    g8 = alloc.group_of("s4")
    assert g8 is not None and g8.tree is pack.content_tree(1)
    # Files shared between tiers are the same source paths, so the engine can read once.
    small = {f.relpath: f.source for f in pack.content_tree(0).files}
    big = {f.relpath: f.source for f in pack.content_tree(2).files}
    assert all(big[k] == v for k, v in small.items())


def test_implicit_single_tier_when_none_declared(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p", {"x/y.txt": b"y", "z.txt": b"z"})
    private, public = make_key(tmp_path)
    seal(root, private)
    p = open_pack(root, keys.load_trusted([public]))
    assert p.tiers() == (Tier("all", 0, ("x", "z.txt")),)
    assert choose_tier(p, 64 * 1024**2, headroom=0.02, fits=overhead_fits) == 0
    assert {f.relpath for f in p.content_tree(0).files} == {("x", "y.txt"), ("z.txt",)}


def test_manifest_files_never_in_tree(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p", {"z.txt": b"z"})
    private, public = make_key(tmp_path)
    seal(root, private)
    p = open_pack(root, keys.load_trusted([public]))
    assert [f.relpath for f in p.content_tree(0).files] == [("z.txt",)]


class FakeSource:
    """Tiers over ContentFiles that need not exist: the layout compiler does no I/O to fit."""

    def __init__(self, tiers: list[tuple[str, int, list[int]]]) -> None:
        self._tiers = tuple(Tier(name, cap, (name,)) for name, cap, _ in tiers)
        self._trees: list[ContentTree] = []
        files: list[ContentFile] = []
        for name, _, sizes in tiers:
            files += [
                ContentFile((name, f"{i}.bin"), Path(f"/nonexistent/{name}/{i}"), s)
                for i, s in enumerate(sizes)
            ]
            self._trees.append(ContentTree(tuple(files)))

    def tiers(self) -> tuple[Tier, ...]:
        return self._tiers

    def content_tree(self, index: int) -> ContentTree:
        return self._trees[index]


GIB = 1024**3
REAL_TIERS = FakeSource(
    [
        ("8GB", 7_500_000_000, [3 * GIB, 3 * GIB, 830_000_000]),  # 7.27 GB
        ("16GB", 15_000_000_000, [4 * GIB - 1, 2_980_000_000]),  # +7.28 GB
        ("32GB", 30_000_000_000, [4 * GIB - 1] * 3 + [1_665_000_000]),  # +14.55 GB
    ]
)


@pytest.mark.parametrize(
    ("capacity", "expected"),
    [
        (7_500_000_000 - 512, None),
        (7_500_000_000, 0),
        (15_000_000_000 - 512, 0),
        (15_000_000_000, 1),
        (30_000_000_000 - 512, 1),
        (30_000_000_000, 2),
        (256 * 10**9, 2),
    ],
)
def test_tier_boundaries_with_the_real_layout_compiler(capacity: int, expected: int | None) -> None:
    assert choose_tier(REAL_TIERS, capacity, headroom=0.02) == expected


def test_each_real_tier_fits_its_minimum_with_headroom_but_not_much_less() -> None:
    from appliance import fat32

    for index, tier in enumerate(REAL_TIERS.tiers()):
        tree = REAL_TIERS.content_tree(index)
        assert fat32.fits(tree, usable_capacity(tier.min_capacity, 0.02))
        assert not fat32.fits(tree, int(tier.min_capacity * 0.95))


def test_headroom_decides_between_tiers() -> None:
    """A drive where tier 2 fits without headroom but not with it gets tier 1."""
    from appliance import fat32

    source = FakeSource([("a", 0, [10**9]), ("b", 2 * 10**9, [3 * GIB])])
    tree = source.content_tree(1)
    need = fat32.required_capacity(tree)
    capacity = need + need // 100  # 1 % spare: fits, but not with 2 % headroom
    assert fat32.fits(tree, capacity)
    assert choose_tier(source, capacity, headroom=0.0) == 1
    assert choose_tier(source, capacity, headroom=0.02) == 0


def test_small_drive_headroom_waived_below_fat32_minimum(tmp_path: Path) -> None:
    source = FakeSource([("tiny", 64 * 1024**2, [1000])])
    assert usable_capacity(64 * 1024**2, 0.02) == 64 * 1024**2
    assert choose_tier(source, 64 * 1024**2, headroom=0.02) == 0
    assert choose_tier(source, 64 * 1024**2 - 512, headroom=0.02) is None
