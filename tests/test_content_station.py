"""Station side: streaming hash check, background verification and its cache, mounting, removal."""

from __future__ import annotations

import errno
import os
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from appliance.config.schema import ContentConfig
from appliance.content import ContentDamaged, MountError, Pack, SignatureError, keys, open_pack
from appliance.content.background import BackgroundVerifier, VerifyCache, VerifyResult
from appliance.content.errors import ContentRemoved
from appliance.content.inserted import insert
from appliance.content.mount import CommandMounter, DirectoryMounter, as_removed, mount_options
from appliance.content.planner import PlainFolder
from appliance.content.seal import seal
from appliance.content.stream import StreamChecker
from tests.content_helpers import FILES, make_key, make_tree


@pytest.fixture
def sealed(tmp_path: Path) -> tuple[Path, Path]:
    root = make_tree(tmp_path / "ssd")
    private, public = make_key(tmp_path)
    seal(root, private)
    return root, public


def opened(root: Path, public: Path) -> Pack:
    return open_pack(root, keys.load_trusted([public]))


def stream_like_the_engine(pack: Pack, checker: StreamChecker, chunk: int = 777) -> None:
    """Read every file of the biggest tier in order, as the engine's reader does."""
    tree = pack.content_tree(len(pack.tiers()) - 1)
    for f in tree.files:
        with open(f.source, "rb") as fh:
            offset = 0
            while data := fh.read(chunk):
                checker.chunk(f.source, offset, data)
                offset += len(data)
        checker.file_done(f.source)


# -- streaming check -------------------------------------------------------------------------


def test_stream_checker_passes_intact_content(sealed: tuple[Path, Path]) -> None:
    pack = opened(*sealed)
    checker = pack.stream_checker()
    stream_like_the_engine(pack, checker)
    assert checker.files_checked == len(FILES)
    assert checker.bytes_checked == sum(len(v) for v in FILES.values())
    stream_like_the_engine(pack, checker)  # a second batch reuses it
    assert checker.files_checked == 2 * len(FILES)


def test_stream_checker_catches_file_damaged_after_verification(
    sealed: tuple[Path, Path],
) -> None:
    root, public = sealed
    pack = opened(root, public)
    assert pack.verify() == []
    target = root / "영상" / "시험 화면.mp4"
    data = bytearray(target.read_bytes())
    data[1234] ^= 0xFF  # the SSD rots between insertion and the batch
    target.write_bytes(bytes(data))
    with pytest.raises(ContentDamaged, match=r"^content SSD damaged: 영상/시험 화면\.mp4"):
        stream_like_the_engine(pack, pack.stream_checker())


def test_stream_checker_catches_truncation_growth_and_disorder(
    sealed: tuple[Path, Path],
) -> None:
    pack = opened(*sealed)
    entry = pack.manifest.entry("English/udhr.txt")
    assert entry is not None
    src = pack.disk_path(entry)
    data = src.read_bytes()
    checker = pack.stream_checker()
    checker.chunk(src, 0, data[:10])
    with pytest.raises(ContentDamaged, match=r"English/udhr\.txt.*10 bytes read"):
        checker.file_done(src)
    checker.chunk(src, 0, data[:10])
    with pytest.raises(ContentDamaged, match="offset 20, expected 10"):
        checker.chunk(src, 20, data[20:])
    with pytest.raises(ContentDamaged, match="longer than signed"):
        checker.chunk(src, 0, data + b"!")
    with pytest.raises(ContentDamaged, match="not in the signed manifest"):
        checker.chunk(src.parent / "stranger.txt", 0, b"x")


def test_stream_checker_empty_file(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p", {"empty.txt": b"", "a.txt": b"a"})
    private, public = make_key(tmp_path)
    seal(root, private)
    pack = opened(root, public)
    checker = pack.stream_checker()
    checker.file_done(root / "empty.txt")  # no chunk at all for an empty file
    assert checker.files_checked == 1


def test_stream_checker_is_thread_safe(sealed: tuple[Path, Path]) -> None:
    pack = opened(*sealed)
    checker = pack.stream_checker()
    errors: list[BaseException] = []
    files = list(pack.content_tree(0).files)

    def one(f: object) -> None:
        try:
            src = f.source  # type: ignore[attr-defined]
            data = src.read_bytes()
            for off in range(0, len(data), 100):
                checker.chunk(src, off, data[off : off + 100])
            checker.file_done(src)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(f,)) for f in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert checker.files_checked == len(files)


# -- background verification and cache ------------------------------------------------------


def test_background_verify_progress_and_cache(sealed: tuple[Path, Path], tmp_path: Path) -> None:
    root, public = sealed
    cache = VerifyCache(tmp_path / "state" / "content-verified")
    seen: list[tuple[int, int, str]] = []
    done: list[VerifyResult] = []
    v = BackgroundVerifier(
        opened(root, public),
        cache=cache,
        on_progress=lambda d, t, p: seen.append((d, t, p)),
        on_done=done.append,
    ).start()
    result = v.wait(30)
    assert result is not None and result.ok and not result.cached
    assert done == [result]
    total = sum(len(x) for x in FILES.values())
    assert seen[-1][:2] == (total, total)
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)
    assert {p for _, _, p in seen} >= set(FILES)
    # Re-inserted: ready at once, no file read.
    again = BackgroundVerifier(opened(root, public), cache=cache).start().wait(30)
    assert again is not None and again.ok and again.cached
    # A file touched in between invalidates the cache entry.
    target = root / "읽어 보세요.txt"
    os.utime(target, ns=(1, 1))
    third = BackgroundVerifier(opened(root, public), cache=cache).start().wait(30)
    assert third is not None and third.ok and not third.cached


def test_background_verify_failure_not_cached(sealed: tuple[Path, Path], tmp_path: Path) -> None:
    root, public = sealed
    cache = VerifyCache(tmp_path / "cache")
    (root / "책" / "세계인권선언.txt").write_bytes("모든 사람은 자유롭게 태어났다!\n".encode())
    result = BackgroundVerifier(opened(root, public), cache=cache).start().wait(30)
    assert result is not None and not result.ok
    assert any("책/세계인권선언.txt" in p for p in result.problems)
    assert "책/세계인권선언.txt" in result.message
    assert not list((tmp_path / "cache").glob("*.json"))


def test_background_verify_cancel(sealed: tuple[Path, Path]) -> None:
    pack = opened(*sealed)
    holder: list[BackgroundVerifier] = []
    v = BackgroundVerifier(pack, on_progress=lambda d, t, p: holder[0].cancel())
    holder.append(v)
    result = v.start().wait(30)
    assert result is not None and result.cancelled and not result.ok


def test_ssd_removed_during_verification(sealed: tuple[Path, Path], tmp_path: Path) -> None:
    root, public = sealed
    pack = opened(root, public)
    moved = tmp_path / "elsewhere"
    state = {"pulled": False}

    def pull(done: int, total: int, path: str) -> None:
        if not state["pulled"]:
            state["pulled"] = True
            root.rename(moved)  # the mount point empties: the SSD is gone

    result = BackgroundVerifier(pack, on_progress=pull).start().wait(30)
    assert result is not None and not result.ok
    assert isinstance(result.error, ContentRemoved) and result.removed
    assert result.message == "content SSD removed"


def test_as_removed_classifies_errors(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    assert isinstance(as_removed(OSError(errno.EIO, "I/O error"), gone), ContentRemoved)
    assert isinstance(as_removed(OSError(errno.ENODEV, "x"), tmp_path), ContentRemoved)
    (tmp_path / "f").write_text("x")
    assert as_removed(OSError(errno.EIO, "bad sector"), tmp_path) is None  # still there
    assert as_removed(ValueError("x"), gone) is None


# -- insertion ---------------------------------------------------------------------------------


def test_insert_verifies_and_unmounts_on_close(sealed: tuple[Path, Path], tmp_path: Path) -> None:
    root, public = sealed
    mounter = DirectoryMounter({"/dev/sdz1": root})
    config = ContentConfig(trusted_keys=[str(public)])
    ins = insert("/dev/sdz1", mounter, config, tmp_path / "state")
    assert ins.verifier is not None
    result = ins.verifier.wait(30)
    assert result is not None and result.ok and ins.ready
    assert mounter.mounted == {root: "/dev/sdz1"}
    ins.close()
    ins.close()
    assert mounter.mounted == {}
    again = insert("/dev/sdz1", mounter, config, tmp_path / "state")
    assert again.verifier is not None
    result = again.verifier.wait(30)
    assert result is not None and result.cached  # re-inserted SSD ready at once


def test_insert_refuses_untrusted_and_unsigned(sealed: tuple[Path, Path], tmp_path: Path) -> None:
    root, _ = sealed
    _, stranger = make_key(tmp_path, "stranger.key")
    mounter = DirectoryMounter({"/dev/sdz1": root})
    with pytest.raises(SignatureError, match=r"manifest\.yaml\.sig"):
        insert("/dev/sdz1", mounter, ContentConfig(trusted_keys=[str(stranger)]), tmp_path)
    assert mounter.mounted == {}
    plain = make_tree(tmp_path / "plain", {"a.txt": b"a"})
    mounter.add("/dev/sdy1", plain)
    with pytest.raises(SignatureError, match="unsigned folder"):
        insert("/dev/sdy1", mounter, ContentConfig(), tmp_path)
    ins = insert("/dev/sdy1", mounter, ContentConfig(allow_unsigned=True), tmp_path)
    assert isinstance(ins.source, PlainFolder) and ins.ready


# -- mounting ----------------------------------------------------------------------------------


class FakeRun:
    def __init__(self, fstype: str) -> None:
        self.fstype = fstype
        self.calls: list[list[str]] = []

    def __call__(self, cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(cmd))
        out = self.fstype + "\n" if cmd[0] == "blkid" else ""
        return subprocess.CompletedProcess(list(cmd), 0, out, "")


@pytest.mark.parametrize(
    ("fstype", "extra"),
    [("exfat", "iocharset=utf8"), ("vfat", "utf8"), ("ext4", "noload")],
)
def test_command_mounter_options(tmp_path: Path, fstype: str, extra: str) -> None:
    run = FakeRun(fstype)
    m = CommandMounter(tmp_path / "mnt", run=run)
    where = m.mount("/dev/sdz1")
    assert where == tmp_path / "mnt" / "sdz1"
    mount_cmd = run.calls[-1]
    assert mount_cmd[:3] == ["mount", "-t", fstype]
    options = mount_cmd[mount_cmd.index("-o") + 1].split(",")
    assert {"ro", "nosuid", "nodev", "noexec", "nosymfollow", extra} <= set(options)
    assert "rw" not in options


@pytest.mark.parametrize("fstype", ["ntfs", "btrfs", ""])
def test_command_mounter_refuses_other_filesystems(tmp_path: Path, fstype: str) -> None:
    run = FakeRun(fstype)
    with pytest.raises(MountError, match="use exFAT, ext4 or FAT32"):
        CommandMounter(tmp_path, run=run).mount("/dev/sdz1")
    assert all(c[0] != "mount" for c in run.calls)


def test_mount_options_string() -> None:
    assert mount_options("vfat", nosymfollow=False) == "ro,nosuid,nodev,noexec,utf8,shortname=mixed"


def _kernel_has(fstype: str) -> bool:
    try:
        return any(line.split()[-1] == fstype for line in open("/proc/filesystems"))
    except OSError:
        return False


def _make_image(image: Path, fstype: str, content: Path) -> None:
    with open(image, "wb") as f:
        f.truncate(64 * 1024**2)
    if fstype == "ext4":
        cmd = ["mkfs.ext4", "-q", "-F", "-d", str(content), str(image)]
        subprocess.run(cmd, check=True, capture_output=True)
    else:
        subprocess.run(["mkfs.fat", "-F", "32", str(image)], check=True, capture_output=True)
        for f in content.iterdir():
            subprocess.run(["mcopy", "-i", str(image), str(f), f"::{f.name}"], check=True)


@pytest.mark.parametrize("fstype", ["ext4", "vfat"])
def test_real_read_only_mount_of_an_image(tmp_path: Path, fstype: str) -> None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("needs root for a loop device")
    if not _kernel_has(fstype):
        pytest.skip(f"this kernel has no {fstype}")
    content = tmp_path / "content"
    content.mkdir()
    (content / "hello.txt").write_text("hello")
    image = tmp_path / "ssd.img"
    _make_image(image, fstype, content)
    made = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"no loop device here: {made.stderr.strip()}")
    loop = made.stdout.strip()
    m = CommandMounter(tmp_path / "mnt")
    try:
        try:
            where = m.mount(loop)
        except MountError as exc:
            if "permission denied" in str(exc).lower() or "not permitted" in str(exc).lower():
                pytest.skip(f"mounting is not allowed here: {exc}")
            raise
        try:
            assert (where / "hello.txt").read_text() == "hello"
            with pytest.raises(OSError) as info:
                (where / "new.txt").write_text("x")
            assert info.value.errno == errno.EROFS
            mounts = Path("/proc/mounts").read_text().splitlines()
            line = next(x for x in mounts if x.split()[1] == str(where))
            options = line.split()[3].split(",")
            for opt in ("ro", "nosuid", "nodev", "noexec", "nosymfollow"):
                assert opt in options
        finally:
            m.unmount(where)
    finally:
        subprocess.run(["losetup", "-d", loop], check=False)
    assert not (tmp_path / "mnt" / Path(loop).name).exists()
