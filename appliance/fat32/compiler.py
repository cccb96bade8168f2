"""The compiler: a content tree and a capacity become a :class:`FatPlan`.

Layout of the cluster heap, the same for every capacity apart from the
cluster size:

1. the root directory at cluster 2, then every other directory in depth-first
   order (all metadata together at the front, where readers look first);
2. file data, each file in one contiguous run, in depth-first directory order
   (:func:`data_order`): the *same* order whatever the capacity, so the engine
   reads each content file once for drives of different sizes;
3. free clusters.

Directory entries are sorted "naturally" (folders first, then files; digits
compared by value, so ``에피소드 2`` comes before ``에피소드 10``): many
players list a folder in on-disk order.

Nothing here reads content files and nothing holds a whole FAT: FAT and
directory bytes are generated chunk by chunk while :meth:`FatPlan.extents`
is iterated, so a plan for a 256 GB target costs memory in proportion to the
number of files, not to the capacity.
"""

from __future__ import annotations

import bisect
import copy
import os
import re
import sys
import zlib
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

from appliance.fat32 import names, structures
from appliance.fat32.geometry import (
    CLUSTER_TABLE,
    MAX_PARTITION_SECTORS,
    MIN_CAPACITY,
    NUM_FATS,
    PARTITION_OFFSET,
    PARTITION_START_SECTOR,
    CapacityTooSmall,
    Geometry,
    check_cluster_size,
    geometry_for,
    min_partition_sectors,
)
from appliance.fat32.plan import (
    SECTOR,
    ContentFile,
    ContentTree,
    Extent,
    FileRange,
    LayoutError,
    LayoutOptions,
    Literal,
    PlannedFile,
    Zeros,
)
from appliance.fat32.tree import dir_entry_count, validate_tree
from appliance.units import format_size

CHUNK = 1024 * 1024  # largest literal extent
_FAT_CHUNK_ENTRIES = CHUNK // 4
_FAT_REUSE_BYTES = 8 * CHUNK  # used FAT up to this size is generated once for both copies


def _random32() -> int:
    """32 random bits from the OS's CSPRNG (what ``secrets`` uses, without its imports)."""
    return int.from_bytes(os.urandom(4), "little")


class ContentTooLarge(LayoutError):
    """The content needs more clusters than the target holds."""


def _natural_key(name: str) -> tuple[tuple[tuple[int, int | str], ...], str]:
    parts = re.split(r"(\d+)", name.casefold())
    key = tuple((1, int(p)) if p.isdigit() else (0, p) for p in parts if p)
    return key, name


@dataclass(eq=False, slots=True)
class _Dir:
    rel: tuple[str, ...]
    parent: _Dir | None = None
    subdirs: list[_Dir] = field(default_factory=list)
    files: list[ContentFile] = field(default_factory=list)
    file_start: int = 0  # index of this directory's first file in data order
    first_cluster: int = 0
    clusters: int = 0

    def entry_names(self) -> list[str]:
        return [d.rel[-1] for d in self.subdirs] + [f.relpath[-1] for f in self.files]


def _build(tree: ContentTree) -> _Dir:
    validate_tree(tree)
    root = _Dir(())
    by_rel: dict[tuple[str, ...], _Dir] = {(): root}

    def get(rel: tuple[str, ...]) -> _Dir:
        node = by_rel.get(rel)
        if node is None:
            parent = get(rel[:-1])
            node = _Dir(rel, parent)
            by_rel[rel] = node
            parent.subdirs.append(node)
        return node

    for d in tree.dirs:
        get(d)
    for f in tree.files:
        get(f.relpath[:-1]).files.append(f)
    for node in by_rel.values():
        node.subdirs.sort(key=lambda d: _natural_key(d.rel[-1]))
        node.files.sort(key=lambda f: _natural_key(f.relpath[-1]))
    return root


def _walk(root: _Dir) -> Iterator[_Dir]:
    """Directories depth-first, in entry order (root first)."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.subdirs))


def data_order(tree: ContentTree) -> list[ContentFile]:
    """The content files in on-device order (independent of the capacity)."""
    return [f for node in _walk(_build(tree)) for f in node.files]


class _Shape:
    """What the content needs, independent of the cluster size."""

    def __init__(self, tree: ContentTree, label: bool) -> None:
        self.root = _build(tree)
        self.dirs = list(_walk(self.root))
        self.dir_bytes = [
            32 * dir_entry_count(d.entry_names(), root=not d.rel, label=label) for d in self.dirs
        ]
        self.files: list[ContentFile] = []
        for d in self.dirs:
            d.file_start = len(self.files)
            self.files.extend(d.files)
        self.content_bytes = sum(f.size for f in self.files)

    def clusters(self, cluster_size: int) -> int:
        dirs = sum(max(1, -(-b // cluster_size)) for b in self.dir_bytes)
        return dirs + sum(-(-f.size // cluster_size) for f in self.files)


class _Need:
    """Cluster needs of a tree for any cluster size: what fits/required_capacity use.

    Kept for the last few trees (by identity) so that asking about many
    capacities, as tier planning does, costs one walk of the tree.
    """

    def __init__(self, shape: _Shape) -> None:
        self.dir_bytes = array("Q", shape.dir_bytes)
        self.sizes = array("Q", (f.size for f in shape.files))
        self.content_bytes = shape.content_bytes
        self._clusters: dict[int, int] = {}

    def clusters(self, cluster_size: int) -> int:
        found = self._clusters.get(cluster_size)
        if found is None:
            dirs = sum(max(1, -(-b // cluster_size)) for b in self.dir_bytes)
            found = dirs + sum(-(-size // cluster_size) for size in self.sizes)
            self._clusters[cluster_size] = found
        return found


_NEEDS: list[tuple[ContentTree, bool, _Need]] = []


def _need(tree: ContentTree, label: bool) -> _Need:
    for known, known_label, need in _NEEDS:
        if known is tree and known_label == label:
            return need
    need = _Need(_Shape(tree, label))
    _NEEDS.append((tree, label, need))
    del _NEEDS[:-4]
    return need


def _describe_need(shape: _Shape | _Need, cluster_size: int) -> str:
    return format_size(shape.clusters(cluster_size) * cluster_size)


class _PlannedFiles(Sequence[PlannedFile]):
    """:attr:`FatPlan.files`, built on access from the compact cluster array."""

    def __init__(self, files: list[ContentFile], clusters: array[int], geometry: Geometry):
        self._files = files
        self._clusters = clusters
        self._geometry = geometry

    def __len__(self) -> int:
        return len(self._files)

    @overload
    def __getitem__(self, index: int) -> PlannedFile: ...
    @overload
    def __getitem__(self, index: slice) -> list[PlannedFile]: ...
    def __getitem__(self, index: int | slice) -> PlannedFile | list[PlannedFile]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        f = self._files[index]
        cluster = self._clusters[index]
        return PlannedFile(f, self._geometry.cluster_offset(cluster) if cluster else 0)


class FatPlan:
    """A compiled FAT32 image (implements :class:`appliance.fat32.plan.Plan`)."""

    def __init__(
        self, shape: _Shape, geometry: Geometry, options: LayoutOptions, label: bytes | None
    ) -> None:
        self.geometry = geometry
        self.capacity = geometry.capacity
        self.partition_offset = PARTITION_OFFSET
        self.partition_size = geometry.partition_size
        self.cluster_size = geometry.cluster_size
        self.label = label
        if options.volume_serial is None:
            self.volume_serial = _random32()
            self.disk_signature = _random32()
        else:
            self.volume_serial = options.volume_serial & 0xFFFFFFFF
            self.disk_signature = zlib.crc32(self.volume_serial.to_bytes(4, "little"))
        self._stamp = structures.fat_datetime(options.timestamp)
        self._shape = shape
        cs = geometry.cluster_size
        cluster = 2
        chain_ends: list[int] = []
        for node, nbytes in zip(shape.dirs, shape.dir_bytes, strict=True):
            node.first_cluster = cluster
            node.clusters = max(1, -(-nbytes // cs))
            cluster += node.clusters
            chain_ends.append(cluster - 1)
        # Compact arrays, not objects per file: a plan for 100 000 files stays small.
        file_clusters = array("I")
        for f in shape.files:
            count = -(-f.size // cs)
            if count:
                file_clusters.append(cluster)
                cluster += count
                chain_ends.append(cluster - 1)
            else:
                file_clusters.append(0)
        self._file_clusters = file_clusters
        self.files: Sequence[PlannedFile] = _PlannedFiles(shape.files, file_clusters, geometry)
        self._chain_ends = array("I", chain_ends)
        self.used_clusters = cluster - 2
        self.next_free = cluster  # first free cluster
        self.free_clusters = geometry.cluster_count - self.used_clusters

    def for_drive(self, volume_serial: int | None = None) -> FatPlan:
        """The same layout with a fresh random volume serial and disk signature.

        Compile once per capacity, then take one of these per drive: sticks
        written from one plan must not share a serial that ties them together.
        """
        twin = copy.copy(self)
        if volume_serial is None:
            twin.volume_serial = _random32()
            twin.disk_signature = _random32()
        else:
            twin.volume_serial = volume_serial & 0xFFFFFFFF
            twin.disk_signature = zlib.crc32(twin.volume_serial.to_bytes(4, "little"))
        return twin

    def data_end(self) -> int:
        """Device offset where the free clusters begin: every byte from here on is zeros."""
        return self.geometry.cluster_offset(self.next_free)

    def bytes_to_write(self) -> int:
        """Bytes of all non-zero extents (literal and file data), without generating them."""
        dirs = sum(node.clusters for node in self._shape.dirs) * self.cluster_size
        return (
            SECTOR
            + 4 * SECTOR  # boot sector + FSInfo, twice
            + NUM_FATS * 4 * self.next_free
            + dirs
            + self._shape.content_bytes
        )

    # -- fixed sectors ---------------------------------------------------------
    @property
    def mbr(self) -> bytes:
        return structures.mbr(self.geometry, self.disk_signature)

    def boot_sector(self) -> bytes:
        return structures.boot_sector(self.geometry, self.volume_serial, self.label)

    def fsinfo(self) -> bytes:
        # The last allocated cluster: Microsoft's drivers start searching *at* the
        # hint, Linux's *after* it; this value is right for both (and is what
        # Windows and mkfs.fat write on an empty volume: 2, the root directory).
        return structures.fsinfo(self.free_clusters, self.next_free - 1)

    # -- lazy regions ---------------------------------------------------------
    def fat_chunk(self, first: int, end: int) -> bytes:
        """FAT entries ``[first, end)`` (clusters below :attr:`next_free`)."""
        entries = array("I", range(first + 1, end + 1))
        if first <= 1:
            entries[0 - first] = structures.FAT_ID
            if end > 1:
                entries[1 - first] = structures.FAT_1
        lo = bisect.bisect_left(self._chain_ends, first)
        hi = bisect.bisect_left(self._chain_ends, end)
        for last in self._chain_ends[lo:hi]:
            entries[last - first] = structures.EOC
        if sys.byteorder != "little":  # pragma: no cover
            entries.byteswap()
        return entries.tobytes()

    def directory_bytes(self, node: _Dir) -> bytes:
        """The whole directory ``node`` (padded with zeros to its clusters)."""
        stamp = self._stamp
        out = bytearray()
        if node.parent is not None:
            parent = node.parent.first_cluster if node.parent.parent is not None else 0
            out += structures.dir_entry(
                b".          ", structures.ATTR_DIRECTORY, node.first_cluster, 0, stamp
            )
            out += structures.dir_entry(b"..         ", structures.ATTR_DIRECTORY, parent, 0, stamp)
        elif self.label is not None:
            out += structures.dir_entry(self.label, structures.ATTR_VOLUME, 0, 0, stamp)
        children: list[tuple[str, int, int, int]] = [
            (d.rel[-1], structures.ATTR_DIRECTORY, d.first_cluster, 0) for d in node.subdirs
        ]
        clusters = self._file_clusters
        children += [
            (f.relpath[-1], structures.ATTR_ARCHIVE, clusters[node.file_start + i], f.size)
            for i, f in enumerate(node.files)
        ]
        shorts = names.ShortNames()
        exact = [names.exact_short(name) for name, *_ in children]
        for short in exact:
            if short is not None:
                shorts.reserve(short)
        for (name, attr, cluster, size), short in zip(children, exact, strict=True):
            if short is None:
                short = shorts.generate(name)
                out += names.lfn_entries(name, short)
            out += structures.dir_entry(short, attr, cluster, size, stamp)
        out += bytes(node.clusters * self.cluster_size - len(out))
        return bytes(out)

    def extents(self) -> Iterator[Extent]:
        g = self.geometry
        yield Extent(0, SECTOR, Literal(self.mbr), "mbr")
        yield Extent(SECTOR, PARTITION_OFFSET - SECTOR, Zeros(), "gap")
        p = PARTITION_OFFSET
        first_two = self.boot_sector() + self.fsinfo()
        backup = structures.BACKUP_BOOT_SECTOR
        yield Extent(p, 2 * SECTOR, Literal(first_two), "boot")
        yield Extent(p + 2 * SECTOR, (backup - 2) * SECTOR, Zeros(), "boot")
        yield Extent(p + backup * SECTOR, 2 * SECTOR, Literal(first_two), "boot")
        rest = g.reserved_sectors - backup - 2
        if rest > 0:
            yield Extent(p + (backup + 2) * SECTOR, rest * SECTOR, Zeros(), "boot")
        # The second FAT repeats the first: its chunks are kept for it when the
        # used part is small, and generated again otherwise (memory stays bounded).
        reuse: dict[int, bytes] | None = {} if self.next_free * 4 <= _FAT_REUSE_BYTES else None
        for fat_copy in range(NUM_FATS):
            base = g.fat_offset + fat_copy * g.fat_size
            for first in range(0, self.next_free, _FAT_CHUNK_ENTRIES):
                end = min(first + _FAT_CHUNK_ENTRIES, self.next_free)
                chunk = reuse.get(first) if reuse is not None else None
                if chunk is None:
                    chunk = self.fat_chunk(first, end)
                    if reuse is not None:
                        reuse[first] = chunk
                yield Extent(base + first * 4, (end - first) * 4, Literal(chunk), "fat")
            used = self.next_free * 4
            if used < g.fat_size:
                yield Extent(base + used, g.fat_size - used, Zeros(), "fat")
        for node in self._shape.dirs:
            data = self.directory_bytes(node)
            start = g.cluster_offset(node.first_cluster)
            for pos in range(0, len(data), CHUNK):
                piece = data[pos : pos + CHUNK]
                yield Extent(start + pos, len(piece), Literal(piece), "dir")
        cs = self.cluster_size
        for index, planned in enumerate(self.files):
            size = planned.file.size
            if not size:
                continue
            yield Extent(
                planned.device_offset, size, FileRange(planned.file.source, 0, index), "data"
            )
            slack = -size % cs
            if slack:
                yield Extent(planned.device_offset + size, slack, Zeros(), "data")
        free_start = g.cluster_offset(self.next_free)
        if free_start < g.partition_end:
            yield Extent(free_start, g.partition_end - free_start, Zeros(), "free")
        if g.partition_end < self.capacity:
            yield Extent(g.partition_end, self.capacity - g.partition_end, Zeros(), "tail")


def _label(options: LayoutOptions) -> bytes | None:
    return structures.label_bytes(options.label)


def compile_plan(tree: ContentTree, capacity: int, options: LayoutOptions | None = None) -> FatPlan:
    """Lay ``tree`` out on a target of ``capacity`` bytes.

    Raises :class:`CapacityTooSmall` below 64 MiB, :class:`ContentTooLarge` when
    the content does not fit, and other :class:`LayoutError` for bad content.
    """
    options = options or LayoutOptions()
    label = _label(options)
    structures.fat_datetime(options.timestamp)
    geometry = geometry_for(capacity, options.cluster_size)
    shape = _Shape(tree, label is not None)
    need = shape.clusters(geometry.cluster_size)
    if need > geometry.cluster_count:
        usable = geometry.cluster_count * geometry.cluster_size
        raise ContentTooLarge(
            f"content of {format_size(shape.content_bytes)} needs "
            f"{_describe_need(shape, geometry.cluster_size)} on FAT32 but the target of "
            f"{format_size(capacity)} holds {format_size(usable)}"
        )
    return FatPlan(shape, geometry, options, label)


def fits(tree: ContentTree, capacity: int, options: LayoutOptions | None = None) -> bool:
    """Whether ``tree`` fits a target of ``capacity`` bytes (no I/O)."""
    options = options or LayoutOptions()
    try:
        geometry = geometry_for(capacity, options.cluster_size)
    except CapacityTooSmall:
        return False
    need = _need(tree, _label(options) is not None)
    return need.clusters(geometry.cluster_size) <= geometry.cluster_count


def required_capacity(tree: ContentTree, options: LayoutOptions | None = None) -> int:
    """The smallest capacity (bytes, a whole number of sectors) whose plan fits ``tree``.

    Because the cluster size grows with the partition, a slightly larger target
    can need more space for many small files; this is the smallest that fits.
    """
    options = options or LayoutOptions()
    shape = _need(tree, _label(options) is not None)
    # (sectors per cluster, partition sizes it applies to: (lower, limit]]
    bands: list[tuple[int, int, int]] = []
    if options.cluster_size is not None:
        bands.append((check_cluster_size(options.cluster_size), 0, MAX_PARTITION_SECTORS))
    else:
        lower = 0
        for limit, spc in CLUSTER_TABLE:
            bands.append((spc, lower, limit))
            lower = limit
    best: int | None = None
    for spc, lower, limit in bands:
        sectors = max(min_partition_sectors(shape.clusters(spc * SECTOR), spc), lower + 1)
        if sectors > limit:
            continue
        capacity = max((sectors + PARTITION_START_SECTOR) * SECTOR, MIN_CAPACITY)
        if best is None or capacity < best:
            best = capacity
    if best is None:
        raise ContentTooLarge(
            f"content of {format_size(shape.content_bytes)} does not fit any FAT32 volume"
        )
    if not fits(tree, best, options):  # pragma: no cover (would be a bug in the sizing)
        raise AssertionError(f"required_capacity computed {best}, which does not fit")
    return best


__all__ = [
    "CapacityTooSmall",
    "ContentTooLarge",
    "FatPlan",
    "compile_plan",
    "data_order",
    "fits",
    "required_capacity",
]
