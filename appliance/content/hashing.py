"""File hashing for packs: BLAKE3 (written by ``seal``) and SHA-256 (accepted).

BLAKE3 because the Pi 4's Cortex-A72 has no SHA extensions: BLAKE3 is several
times faster there, and verification of a whole SSD is on the operator's
critical path. SHA-256 is accepted so curators can produce manifests with
common tools.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import blake3

from appliance.content.errors import VerifyCancelled

ALGORITHMS = ("blake3", "sha256")
#: Bytes read per call; large enough that Python overhead is negligible.
CHUNK = 1024 * 1024


class Hasher(Protocol):
    def update(self, data: bytes, /) -> object: ...

    def hexdigest(self) -> str: ...


def new_hasher(algorithm: str) -> Hasher:
    if algorithm == "blake3":
        h: Hasher = blake3.blake3()
        return h
    if algorithm == "sha256":
        return hashlib.sha256()
    raise ValueError(f"unknown hash algorithm {algorithm!r} (use blake3 or sha256)")


def digest_bytes(data: bytes, algorithm: str = "blake3") -> str:
    h = new_hasher(algorithm)
    h.update(data)
    return h.hexdigest()


def hash_file(
    path: Path,
    algorithm: str = "blake3",
    *,
    progress: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
) -> tuple[str, int]:
    """Hash ``path``; return ``(hexdigest, bytes read)``.

    ``progress(n)`` is called with the bytes of each chunk read. When ``cancel``
    is set the read stops and :class:`~appliance.content.errors.VerifyCancelled`
    is raised.
    """
    h = new_hasher(algorithm)
    total = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            if cancel is not None and cancel.is_set():
                raise VerifyCancelled("verification cancelled")
            data = f.read(CHUNK)
            if not data:
                break
            h.update(data)
            total += len(data)
            if progress is not None:
                progress(len(data))
    return h.hexdigest(), total
