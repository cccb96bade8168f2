"""What the station calls when a content SSD is inserted: mount, check, verify in the background.

The station (not this package) decides which device is the content SSD and
owns the screens; this module gives it one object per inserted SSD:

1. mount read-only through a :class:`~appliance.content.mount.Mounter`;
2. check the signature against ``content.trusted_keys`` (a folder without a
   manifest, or a pack without a signature, is refused unless
   ``content.allow_unsigned``);
3. verify every file on a background thread, with progress, unless the
   cache under the station's state dir says this exact pack already did.

Removal: :meth:`InsertedContent.close` cancels the verifier and unmounts;
errors raised while reading a removed SSD are turned into
:class:`ContentRemoved` by :func:`~appliance.content.mount.as_removed`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from appliance.config.schema import ContentConfig
from appliance.content.background import BackgroundVerifier, VerifyCache, VerifyResult
from appliance.content.errors import PackError, SignatureError
from appliance.content.keys import TrustedKey, load_trusted
from appliance.content.mount import Mounter
from appliance.content.pack import Pack, Progress, is_pack, open_pack
from appliance.content.planner import PlainFolder

log = logging.getLogger(__name__)

CACHE_SUBDIR = "content-verified"
#: Key id of the committed sample-pack TEST key (appliance/data/test-keys): warned about.
TEST_KEY_IDS = frozenset({"c1cc7b490d5d962c"})


def trusted_keys(config: ContentConfig) -> list[TrustedKey]:
    keys = load_trusted(config.trusted_keys)
    for key in keys:
        if key.id in TEST_KEY_IDS:
            log.warning("trusting the TEST-ONLY sample key %s from %s", key.id, key.origin)
    return keys


def open_content(root: Path, config: ContentConfig) -> Pack | PlainFolder:
    """Open what is at ``root``: a signed pack, or (only if allowed) unsigned content."""
    if is_pack(root):
        return open_pack(root, trusted_keys(config), allow_unsigned=config.allow_unsigned)
    if not config.allow_unsigned:
        raise SignatureError(
            "no manifest.yaml: the SSD holds an unsigned folder, refused "
            "(seal it, or set content.allow_unsigned)"
        )
    return PlainFolder(root)


@dataclass
class InsertedContent:
    """One mounted content SSD and its verification."""

    device: str
    root: Path
    source: Pack | PlainFolder
    mounter: Mounter
    verifier: BackgroundVerifier | None = None
    closed: bool = field(default=False)

    @property
    def ready(self) -> bool:
        """True when loading may start: verified (or unsigned folder, allowed)."""
        if self.verifier is None:
            return True
        result = self.verifier.result
        return result is not None and result.ok

    def close(self) -> None:
        """Stop verifying and unmount (on removal, or before a swap). Idempotent."""
        if self.closed:
            return
        self.closed = True
        if self.verifier is not None:
            self.verifier.cancel()
            self.verifier.wait(5.0)
        try:
            self.mounter.unmount(self.root)
        except PackError as exc:
            log.warning("unmounting the content SSD: %s", exc)


def insert(
    device: str,
    mounter: Mounter,
    config: ContentConfig,
    state_dir: Path,
    *,
    on_progress: Progress | None = None,
    on_done: Callable[[VerifyResult], None] | None = None,
) -> InsertedContent:
    """Mount ``device``, check its signature and start verifying it in the background.

    Raises (after unmounting) :class:`SignatureError`, :class:`ManifestError`
    or :class:`MountError` with a one-line reason for the screen.
    """
    root = mounter.mount(device)
    try:
        source = open_content(root, config)
    except BaseException:
        mounter.unmount(root)
        raise
    inserted = InsertedContent(device, root, source, mounter)
    if isinstance(source, Pack):
        cache = VerifyCache(Path(state_dir) / CACHE_SUBDIR)
        inserted.verifier = BackgroundVerifier(
            source, cache=cache, on_progress=on_progress, on_done=on_done
        ).start()
    return inserted
