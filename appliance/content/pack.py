"""Opening a pack (signature first), verifying its files, and the content of each tier.

Order matters: the signature is checked over the raw manifest bytes before
the YAML is parsed at all, so an untrusted manifest never reaches the parser.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from appliance.content.errors import ManifestError, SignatureError, VerifyFailed
from appliance.content.hashing import digest_bytes, hash_file
from appliance.content.keys import MAX_SIGNATURE_FILE, TrustedKey, check_signature
from appliance.content.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    SIGNATURE_NAME,
    FileEntry,
    Manifest,
    Tier,
    parse_manifest,
)
from appliance.content.stream import StreamChecker
from appliance.content.walk import Listing, list_pack
from appliance.fat32.plan import ContentFile, ContentTree

#: ``progress(done_bytes, total_bytes, current_path)``
Progress = Callable[[int, int, str], None]


def is_pack(root: Path) -> bool:
    """True when ``root`` holds a manifest (sealed or not): load it as a pack, not a folder."""
    return (Path(root) / MANIFEST_NAME).is_file()


def read_limited(path: Path, limit: int, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError as exc:
        raise ManifestError(f"{path}: no {what} here") from exc
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read {what} ({exc.strerror})") from exc
    if len(data) > limit:
        raise ManifestError(f"{path}: {what} larger than {limit} bytes")
    return data


@dataclass
class Pack:
    """An opened pack: signature checked, manifest parsed, files listed (not yet hashed)."""

    root: Path
    manifest: Manifest
    manifest_bytes: bytes
    signer: TrustedKey | None  # None: unsigned, allowed by configuration
    listing: Listing
    _trees: dict[int, ContentTree] = field(default_factory=dict, repr=False)

    @property
    def manifest_hash(self) -> str:
        """BLAKE3 of the exact manifest bytes: the identity of the pack's promised content."""
        return digest_bytes(self.manifest_bytes)

    def disk_path(self, entry: FileEntry) -> Path:
        found = self.listing.files.get(entry.path)
        if found is not None:
            return found.path
        return self.root.joinpath(*entry.parts)

    def tiers(self) -> tuple[Tier, ...]:
        """The pack's tiers, smallest first (one implicit tier when none are declared)."""
        return self.manifest.effective_tiers()

    def content_tree(self, tier_index: int) -> ContentTree:
        """The files of tier ``tier_index`` (cumulative) as the layout compiler's input.

        The same object is returned for the same tier, so targets of one tier
        share one tree and the engine reads the content once for all of them.
        ``manifest.yaml`` and its signature are never part of it.
        """
        tree = self._trees.get(tier_index)
        if tree is None:
            files = tuple(
                ContentFile(e.parts, self.disk_path(e), e.size)
                for e in self.manifest.tier_files(tier_index)
            )
            dirs = sorted({f.relpath[:k] for f in files for k in range(1, len(f.relpath))})
            tree = ContentTree(files, tuple(dirs))
            self._trees[tier_index] = tree
        return tree

    def stream_checker(self) -> StreamChecker:
        """A fresh source observer for the engine, covering every file of the pack."""
        return StreamChecker((self.disk_path(e), e) for e in self.manifest.files)

    def problems_without_hashing(self) -> list[str]:
        """Missing, extra, resized, linked or special files: everything short of hashing."""
        problems: list[str] = []
        for entry in self.manifest.files:
            disk = self.listing.files.get(entry.path)
            if disk is None:
                problems.append(f"missing: {entry.path}")
            elif disk.size != entry.size:
                problems.append(
                    f"changed: {entry.path} ({disk.size} bytes, manifest says {entry.size})"
                )
        for path in sorted(set(self.listing.files) - {f.path for f in self.manifest.files}):
            problems.append(f"extra: {path} (not in the manifest)")
        problems.extend(f"unusable: {odd}" for odd in self.listing.odd)
        return problems

    def preflight(self) -> None:
        """Refuse at once what needs no hashing to see: missing, extra or resized files.

        For ``flashstation load``: file contents are then checked as they stream.
        """
        problems = self.problems_without_hashing()
        if problems:
            raise VerifyFailed(problems)

    def verify(
        self,
        *,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> list[str]:
        """Hash every file; return every problem (empty list: the pack is intact).

        Files already known to be missing or resized are not hashed.
        ``progress`` gets bytes done, bytes total and the file being read.
        """
        problems = self.problems_without_hashing()
        to_hash = [
            e
            for e in self.manifest.files
            if (d := self.listing.files.get(e.path)) is not None and d.size == e.size
        ]
        total = sum(e.size for e in to_hash)
        done = 0
        for entry in to_hash:
            if progress is not None:
                progress(done, total, entry.path)

            def step(n: int, path: str = entry.path) -> None:
                nonlocal done
                done += n
                if progress is not None:
                    progress(done, total, path)

            try:
                digest, _ = hash_file(
                    self.disk_path(entry), entry.algorithm, progress=step, cancel=cancel
                )
            except OSError as exc:
                problems.append(f"unreadable: {entry.path} ({exc.strerror})")
                continue
            if digest != entry.digest:
                problems.append(f"changed: {entry.path} (contents differ from the manifest)")
        if progress is not None:
            progress(total, total, "")
        return problems

    def verify_or_raise(
        self, *, progress: Progress | None = None, cancel: threading.Event | None = None
    ) -> None:
        problems = self.verify(progress=progress, cancel=cancel)
        if problems:
            raise VerifyFailed(problems)


def open_pack(
    root: Path,
    trusted: Sequence[TrustedKey],
    *,
    allow_unsigned: bool = False,
) -> Pack:
    """Check the signature, then parse the manifest and list the files.

    A missing signature is refused unless ``allow_unsigned``; a present but
    bad signature is always refused.
    """
    root = Path(root)
    manifest_path = root / MANIFEST_NAME
    sig_path = root / SIGNATURE_NAME
    data = read_limited(manifest_path, MAX_MANIFEST_BYTES, "manifest.yaml")
    signer: TrustedKey | None = None
    if sig_path.exists():
        try:
            with open(sig_path, "rb") as f:
                sig = f.read(MAX_SIGNATURE_FILE + 1)  # parse_signature refuses anything longer
        except OSError as exc:
            raise SignatureError(f"{SIGNATURE_NAME}: cannot read ({exc.strerror})") from exc
        signer = check_signature(data, sig, trusted, SIGNATURE_NAME)
    elif not allow_unsigned:
        raise SignatureError(
            f"{SIGNATURE_NAME}: missing; unsigned packs are refused (content.allow_unsigned is off)"
        )
    manifest = parse_manifest(data, MANIFEST_NAME)
    return Pack(root, manifest, data, signer, list_pack(root))


def read_unverified(root: Path) -> Pack:
    """The pack at ``root`` without checking its signature: for curators' reports only.

    Never use this to load drives: :func:`open_pack` is the only way in.
    """
    root = Path(root)
    data = read_limited(root / MANIFEST_NAME, MAX_MANIFEST_BYTES, "manifest.yaml")
    return Pack(root, parse_manifest(data, MANIFEST_NAME), data, None, list_pack(root))
