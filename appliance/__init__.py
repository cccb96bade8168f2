"""Flash Station: firmware for a Raspberry Pi wipe-and-load station for donated USB sticks."""

__version__ = "0.1.0"
