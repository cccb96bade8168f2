"""FAT32 layout compiler: a content tree and a capacity become a plan of extents.

Pure computation apart from :func:`scan_content` (reads a folder's metadata),
:func:`write_image` (writes a sparse file) and :func:`inspect_image`: nothing
here opens a device. See :mod:`appliance.fat32.plan` for the types the engine
consumes and ``docs/fat32.md`` for every on-disk choice.
"""

from typing import TYPE_CHECKING, Any

from appliance.fat32.compiler import (
    ContentTooLarge,
    FatPlan,
    compile_plan,
    data_order,
    fits,
    required_capacity,
)
from appliance.fat32.geometry import MIN_CAPACITY, CapacityTooSmall
from appliance.fat32.image import ContentChanged, write_image
from appliance.fat32.options import options_from_config
from appliance.fat32.plan import (
    ContentFile,
    ContentTree,
    Extent,
    FileRange,
    LayoutError,
    LayoutOptions,
    Literal,
    Plan,
    PlannedFile,
    Zeros,
)
from appliance.fat32.tree import ContentError, scan_content

if TYPE_CHECKING:
    from appliance.fat32.inspect import ImageInfo, NotAnImage, inspect_image


def __getattr__(name: str) -> Any:
    """The image reader is imported on first use: make-image's start-up skips it."""
    if name in {"ImageInfo", "NotAnImage", "inspect_image"}:
        from appliance.fat32 import inspect

        return getattr(inspect, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MIN_CAPACITY",
    "CapacityTooSmall",
    "ContentChanged",
    "ContentError",
    "ContentFile",
    "ContentTooLarge",
    "ContentTree",
    "Extent",
    "FatPlan",
    "FileRange",
    "ImageInfo",
    "LayoutError",
    "LayoutOptions",
    "Literal",
    "NotAnImage",
    "Plan",
    "PlannedFile",
    "Zeros",
    "compile_plan",
    "data_order",
    "fits",
    "inspect_image",
    "options_from_config",
    "required_capacity",
    "scan_content",
    "write_image",
]
