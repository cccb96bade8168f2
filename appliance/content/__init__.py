"""Content packs: sealing, signature and hash verification, tiers, and pre-flight checks.

A pack is a folder with ``manifest.yaml`` and ``manifest.yaml.sig`` beside the
content (``docs/content-pack.md``). Curators seal it on a laptop; the station
checks the signature, verifies every file in the background, picks a tier per
drive and hashes each file again as it streams to the drives.

This package never imports the engine or hotplug: the station or a command
wires them (the engine takes our :class:`StreamChecker` as a source observer).
"""

from appliance.content.errors import (
    ContentDamaged,
    ContentRemoved,
    KeyFileError,
    ManifestError,
    MountError,
    NoTierFits,
    PackError,
    SignatureError,
    VerifyCancelled,
    VerifyFailed,
)
from appliance.content.keys import TrustedKey, load_public, load_trusted
from appliance.content.manifest import FORMAT_VERSION, FileEntry, Manifest, Tier
from appliance.content.pack import Pack, is_pack, open_pack

__all__ = [
    "FORMAT_VERSION",
    "ContentDamaged",
    "ContentRemoved",
    "FileEntry",
    "KeyFileError",
    "Manifest",
    "ManifestError",
    "MountError",
    "NoTierFits",
    "Pack",
    "PackError",
    "SignatureError",
    "Tier",
    "TrustedKey",
    "VerifyCancelled",
    "VerifyFailed",
    "is_pack",
    "load_public",
    "load_trusted",
    "open_pack",
]
