"""FAT32 layout compiler: a content tree and a capacity become a plan of extents.

Pure computation: nothing here opens a device. See :mod:`appliance.fat32.plan`
for the types the engine consumes.
"""
