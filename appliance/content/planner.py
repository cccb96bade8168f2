"""Picking a tier for every target, grouped so each group reads the content once.

Rule (``docs/content-pack.md``): a target gets the largest tier whose
``min_capacity`` is at most the target's *real* capacity (after the
fake-capacity probe; the station passes it) and whose content fits, by the
layout compiler's own arithmetic (:func:`appliance.fat32.fits`), in that
capacity less ``content.headroom``. ``content check`` makes sure every tier
fits its own minimum, so for a checked pack the boundaries are exactly the
tiers' ``min_capacity``; for an unchecked one, a tier that does not fit falls
back to the next smaller tier rather than failing the drive.

Targets that get the same tier share one :class:`ContentTree` object: the
engine then reads the content once for all of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from appliance import fat32
from appliance.content.manifest import Tier
from appliance.fat32.plan import ContentTree
from appliance.units import format_size

K = TypeVar("K", bound=Hashable)

#: ``fits(tree, capacity, options) -> bool``; the layout compiler's by default.
Fits = Callable[[ContentTree, int, Any], bool]


class TierSource(Protocol):
    """Anything with tiers and a tree per tier: a sealed :class:`Pack` or a plain folder."""

    def tiers(self) -> tuple[Tier, ...]: ...

    def content_tree(self, tier_index: int) -> ContentTree: ...


def default_fits() -> Fits:
    def call(tree: ContentTree, capacity: int, options: Any) -> bool:
        return fat32.fits(tree, capacity, options)

    return call


def usable_capacity(capacity: int, headroom: float) -> int:
    """Capacity a tier must fit in on a target of ``capacity`` bytes.

    ``capacity`` less ``headroom``, but never below FAT32's smallest volume
    (64 MiB, itself mostly slack for small content): headroom is waived there
    rather than making the smallest drives useless.
    """
    if not 0.0 <= headroom < 1.0:
        raise ValueError(f"headroom {headroom} must be in [0, 1)")
    return max(math.floor(capacity * (1.0 - headroom)), min(capacity, fat32.MIN_CAPACITY))


def tier_fits(
    tree: ContentTree, capacity: int, headroom: float, fits: Fits, options: Any = None
) -> bool:
    """The tree fits the real capacity, and the capacity less headroom."""
    usable = usable_capacity(capacity, headroom)
    if not fits(tree, usable, options):
        return False
    return usable == capacity or fits(tree, capacity, options)


@dataclass(frozen=True)
class TierGroup(Generic[K]):
    """Targets that get the same tier, and the one tree they all load."""

    tier_index: int
    tier: Tier
    tree: ContentTree
    targets: tuple[K, ...]


@dataclass(frozen=True)
class Allocation(Generic[K]):
    groups: tuple[TierGroup[K], ...]
    unfit: dict[K, str] = field(default_factory=dict)  # target -> one-line reason

    def group_of(self, target: K) -> TierGroup[K] | None:
        for g in self.groups:
            if target in g.targets:
                return g
        return None


def choose_tier(
    source: TierSource,
    capacity: int,
    *,
    headroom: float,
    options: Any = None,
    fits: Fits | None = None,
) -> int | None:
    """Index of the tier for a target of ``capacity`` real bytes, or None if none fits."""
    fits = fits or default_fits()
    tiers = source.tiers()
    for index in range(len(tiers) - 1, -1, -1):
        if tiers[index].min_capacity > capacity:
            continue
        if tier_fits(source.content_tree(index), capacity, headroom, fits, options):
            return index
    return None


def allocate(
    source: TierSource,
    capacities: Mapping[K, int],
    *,
    headroom: float,
    options: Any = None,
    fits: Fits | None = None,
) -> Allocation[K]:
    """Choose a tier for every target; group targets by tier (smallest tier first)."""
    fits = fits or default_fits()
    cache: dict[tuple[int, int], bool] = {}

    def cached(tree: ContentTree, usable: int, opts: Any) -> bool:
        key = (id(tree), usable)  # trees are shared per tier and live as long as ``source``
        if key not in cache:
            cache[key] = fits(tree, usable, opts)
        return cache[key]

    chosen: dict[int, list[K]] = {}
    unfit: dict[K, str] = {}
    tiers = source.tiers()
    for target, capacity in capacities.items():
        index = choose_tier(source, capacity, headroom=headroom, options=options, fits=cached)
        if index is None:
            smallest = tiers[0]
            unfit[target] = (
                f"{format_size(capacity)} is too small for the smallest tier "
                f"{smallest.name!r} (with {headroom:.0%} kept free)"
            )
        else:
            chosen.setdefault(index, []).append(target)
    groups = tuple(
        TierGroup(i, tiers[i], source.content_tree(i), tuple(targets))
        for i, targets in sorted(chosen.items())
    )
    return Allocation(groups, unfit)


class PlainFolder:
    """A folder without a manifest: loaded whole, as one tier, checked by the layout compiler.

    No signature and no hashes: ``flashstation load`` accepts it for operators
    who load their own files; the station refuses it unless
    ``content.allow_unsigned`` is on.
    """

    def __init__(self, root: Any, *, warn: Callable[[str], None] | None = None) -> None:
        self.root = root
        self._warn = warn
        self._tree: ContentTree | None = None

    def tiers(self) -> tuple[Tier, ...]:
        return (Tier("whole folder", 0, ()),)

    def content_tree(self, tier_index: int) -> ContentTree:
        if tier_index != 0:
            raise IndexError(tier_index)
        if self._tree is None:
            self._tree = fat32.scan_content(self.root, warn=self._warn)
        return self._tree
