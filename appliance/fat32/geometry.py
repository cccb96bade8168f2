"""Where the partition, the FATs and the cluster heap go for a given capacity.

The partition starts at 1 MiB (what Windows, diskpart and parted do: flash
erase blocks and pages are powers of two) and runs to the last whole sector
of the target. Inside it: reserved sectors (boot sector, FSInfo, backup copies),
two FATs, then the cluster heap from cluster 2.

Cluster size follows Microsoft's table for FAT32 (fatgen103 "DskTableFAT32",
which Windows ``format`` and ``mkfs.fat`` both use):

=========================  ============
partition size             cluster size
=========================  ============
up to 260 MiB              512 bytes
up to 8 GiB                4 KiB
up to 16 GiB               8 KiB
up to 32 GiB               16 KiB
larger                     32 KiB
=========================  ============

Like ``mkfs.fat`` we round the reserved sectors and each FAT up to a whole
number of clusters, so every cluster starts on a cluster-size boundary of the
device (the partition itself is 1 MiB aligned): flash writes whole pages.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.fat32.plan import SECTOR, LayoutError

PARTITION_OFFSET = 1024 * 1024
PARTITION_START_SECTOR = PARTITION_OFFSET // SECTOR
MIN_CAPACITY = 64 * 1024 * 1024
RESERVED_SECTORS = 32
NUM_FATS = 2
MIN_CLUSTERS = 65525  # fewer clusters and readers take the volume for FAT16
MAX_CLUSTERS = 0x0FFFFFF5 - 2
MAX_PARTITION_SECTORS = 0xFFFFFFFF  # an MBR partition entry holds 32-bit sector counts

#: (largest partition size in sectors, sectors per cluster), Microsoft's FAT32 table.
CLUSTER_TABLE: tuple[tuple[int, int], ...] = (
    (532_480, 1),  # 260 MiB
    (16_777_216, 8),  # 8 GiB
    (33_554_432, 16),  # 16 GiB
    (67_108_864, 32),  # 32 GiB
    (MAX_PARTITION_SECTORS, 64),
)


class CapacityTooSmall(LayoutError):
    """The target is too small for a FAT32 volume (or for the chosen cluster size)."""


def default_sectors_per_cluster(partition_sectors: int) -> int:
    for limit, spc in CLUSTER_TABLE:
        if partition_sectors <= limit:
            return spc
    return CLUSTER_TABLE[-1][1]


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@dataclass(frozen=True, slots=True)
class Geometry:
    """The fixed numbers of one FAT32 volume (sectors are 512 bytes)."""

    capacity: int
    partition_sectors: int
    sectors_per_cluster: int
    reserved_sectors: int
    fat_sectors: int
    cluster_count: int

    @property
    def cluster_size(self) -> int:
        return self.sectors_per_cluster * SECTOR

    @property
    def partition_offset(self) -> int:
        return PARTITION_OFFSET

    @property
    def partition_size(self) -> int:
        return self.partition_sectors * SECTOR

    @property
    def fat_offset(self) -> int:
        """Device offset of the first FAT."""
        return PARTITION_OFFSET + self.reserved_sectors * SECTOR

    @property
    def fat_size(self) -> int:
        return self.fat_sectors * SECTOR

    @property
    def data_offset(self) -> int:
        """Device offset of cluster 2."""
        return self.fat_offset + NUM_FATS * self.fat_size

    def cluster_offset(self, cluster: int) -> int:
        return self.data_offset + (cluster - 2) * self.cluster_size

    @property
    def heap_end(self) -> int:
        """Device offset just after the last cluster."""
        return self.cluster_offset(self.cluster_count + 2)

    @property
    def partition_end(self) -> int:
        return PARTITION_OFFSET + self.partition_size


def _clusters(total: int, reserved: int, fat: int, spc: int) -> int:
    return (total - reserved - NUM_FATS * fat) // spc


def _fat_needed(clusters: int, spc: int) -> int:
    return _round_up(_round_up((clusters + 2) * 4, SECTOR) // SECTOR, spc)


def volume_layout(partition_sectors: int, spc: int) -> tuple[int, int, int]:
    """(reserved sectors, sectors per FAT, cluster count) for a partition.

    The FAT is the smallest whole number of clusters that maps every cluster
    left after it (the same answer ``mkfs.fat`` gives).
    """
    reserved = _round_up(RESERVED_SECTORS, spc)
    fat = _fat_needed(max(0, _clusters(partition_sectors, reserved, 0, spc)), spc)
    while fat > spc:
        smaller = fat - spc
        clusters = _clusters(partition_sectors, reserved, smaller, spc)
        if clusters < 0 or _fat_needed(clusters, spc) > smaller:
            break
        fat = smaller
    return reserved, fat, max(0, _clusters(partition_sectors, reserved, fat, spc))


def check_cluster_size(cluster_size: int) -> int:
    """Sectors per cluster for an explicit cluster size, or LayoutError."""
    if cluster_size < SECTOR or cluster_size > 32768 or cluster_size & (cluster_size - 1):
        raise LayoutError(
            f"cluster size {cluster_size} is not a power of two from 512 to 32768 bytes"
        )
    return cluster_size // SECTOR


def geometry_for(capacity: int, cluster_size: int | None = None) -> Geometry:
    """The volume for a target of ``capacity`` bytes, or :class:`CapacityTooSmall`."""
    from appliance.units import format_size

    if capacity < MIN_CAPACITY:
        raise CapacityTooSmall(
            f"target of {format_size(capacity)} is smaller than the minimum of "
            f"64 MiB ({format_size(MIN_CAPACITY)}) for a FAT32 stick"
        )
    partition_sectors = min(capacity // SECTOR - PARTITION_START_SECTOR, MAX_PARTITION_SECTORS)
    if cluster_size is None:
        spc = default_sectors_per_cluster(partition_sectors)
    else:
        spc = check_cluster_size(cluster_size)
    reserved, fat, clusters = volume_layout(partition_sectors, spc)
    if clusters < MIN_CLUSTERS:
        raise CapacityTooSmall(
            f"target of {format_size(capacity)} gives only {clusters} clusters of "
            f"{spc * SECTOR} bytes; FAT32 needs at least {MIN_CLUSTERS}"
        )
    clusters = min(clusters, MAX_CLUSTERS)
    return Geometry(capacity, partition_sectors, spc, reserved, fat, clusters)


def min_partition_sectors(clusters_needed: int, spc: int) -> int:
    """The smallest partition (sectors) with at least ``clusters_needed`` clusters."""
    clusters_needed = max(clusters_needed, MIN_CLUSTERS)
    reserved = _round_up(RESERVED_SECTORS, spc)
    total = reserved + NUM_FATS * _fat_needed(clusters_needed, spc) + clusters_needed * spc
    # The estimate can be a little high (never low); walk down while still enough.
    step = spc
    while step >= 1:
        while total - step > 0 and volume_layout(total - step, spc)[2] >= clusters_needed:
            total -= step
        step //= 2
    while volume_layout(total, spc)[2] < clusters_needed:
        total += 1
    return total
