"""scan_content: what is skipped with a warning and what is refused, with which reason."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from appliance.fat32 import ContentError, LayoutError, scan_content
from appliance.fat32 import tree as tree_mod


def put(root: Path, rel: str, data: bytes = b"x") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_hidden_and_system_files_skipped_with_warning(tmp_path: Path) -> None:
    for rel in [".DS_Store", "Thumbs.db", "a/desktop.ini", "__MACOSX/._x", "._film.mp4", ".hid"]:
        put(tmp_path, rel)
    put(tmp_path, "film.mp4")
    warnings: list[str] = []
    tree = scan_content(tmp_path, warn=warnings.append)
    assert [f.relpath for f in tree.files] == [("film.mp4",)]
    assert tree.dirs == (("a",),)
    assert len(warnings) == 6
    assert all("skipped" in w and "\n" not in w for w in warnings)
    assert any("__MACOSX" in w for w in warnings)


def test_sizes_and_nfc_names(tmp_path: Path) -> None:
    put(tmp_path, "\u1112\u1161\u11ab.txt", b"abc")  # "한" decomposed (NFD, as macOS writes)
    tree = scan_content(tmp_path)
    assert tree.files[0].relpath == ("한.txt",)
    assert tree.files[0].size == 3


def _refused(root: Path, fragment: str) -> str:
    with pytest.raises(ContentError) as info:
        scan_content(root)
    message = str(info.value)
    assert "\n" not in message
    assert fragment in message
    assert isinstance(info.value, LayoutError)
    return message


def test_file_of_4_gib_refused(tmp_path: Path) -> None:
    with open(tmp_path / "big.mkv", "wb") as f:
        f.truncate(4 * 1024**3)
    _refused(tmp_path, "big.mkv")


def test_file_just_under_4_gib_accepted(tmp_path: Path) -> None:
    with open(tmp_path / "big.mkv", "wb") as f:
        f.truncate(4 * 1024**3 - 1)
    assert scan_content(tmp_path).files[0].size == 4 * 1024**3 - 1


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("a:b.txt", "':'"),
        ("what?.txt", "'?'"),
        ('quote".txt', "'\"'"),
        ("tab\there", "'\\t'"),
        ("CON", "reserved device name CON"),
        ("nul.txt", "reserved device name NUL"),
        ("com1.mp4", "reserved device name COM1"),
        ("trailing.", "ends with a dot"),
        ("trailing ", "ends with a dot or a space"),
        (" leading", "starts with a space"),
    ],
)
def test_bad_names_refused(tmp_path: Path, name: str, fragment: str) -> None:
    put(tmp_path, f"dir/{name}")
    message = _refused(tmp_path, fragment)
    assert message.startswith("dir/")


def test_long_single_name_refused_by_validation() -> None:
    # ext4 stops names at 255 bytes, so check the rule on a tree built in memory
    from appliance.fat32 import ContentFile, ContentTree
    from appliance.fat32.tree import validate_tree

    tree = ContentTree((ContentFile(("x" * 256,), Path("/dev/null"), 0),))
    with pytest.raises(ContentError, match="longer than 255 UTF-16 units"):
        validate_tree(tree)


def test_undecodable_name_refused(tmp_path: Path) -> None:
    os.makedirs(tmp_path, exist_ok=True)
    with open(os.path.join(os.fsencode(tmp_path), b"bad\xffname"), "wb") as f:
        f.write(b"x")
    _refused(tmp_path, "UTF-8")


def test_path_longer_than_255_units_refused(tmp_path: Path) -> None:
    rel = "/".join(["가" * 60] * 4) + "/" + "나" * 20
    put(tmp_path, rel)
    _refused(tmp_path, "UTF-16 units")


def test_directory_over_entry_limit_refused(tmp_path: Path) -> None:
    d = tmp_path / "many"
    d.mkdir()
    # each name needs 2 long-name entries + 1 short entry: 21846 names > 65536 entries
    for i in range(21846):
        (d / f"file number {i:05d}").touch()
    _refused(tmp_path, "65536")


def test_names_equal_but_for_case_refused(tmp_path: Path) -> None:
    put(tmp_path, "Films/Friends.mp4")
    put(tmp_path, "Films/friends.MP4")
    _refused(tmp_path, "only in case")


def test_symlink_inside_tree_followed(tmp_path: Path) -> None:
    put(tmp_path, "real/film.mp4", b"12345")
    (tmp_path / "link.mp4").symlink_to("real/film.mp4")
    tree = scan_content(tmp_path)
    link = next(f for f in tree.files if f.relpath == ("link.mp4",))
    assert link.size == 5
    assert link.source == (tmp_path / "real/film.mp4").resolve()


def test_symlink_leaving_tree_refused(tmp_path: Path) -> None:
    outside = put(tmp_path, "outside.txt")
    root = tmp_path / "content"
    root.mkdir()
    (root / "escape.txt").symlink_to(outside)
    _refused(root, "outside the content folder")


def test_symlink_to_directory_and_dangling_refused(tmp_path: Path) -> None:
    put(tmp_path, "real/a.txt")
    (tmp_path / "loop").symlink_to(tmp_path / "real")
    _refused(tmp_path, "link to a folder")
    (tmp_path / "loop").unlink()
    (tmp_path / "dangling").symlink_to(tmp_path / "nothing")
    _refused(tmp_path, "leads nowhere")


def test_fifo_and_socket_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    _refused(tmp_path, "named pipe")
    os.unlink(tmp_path / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "sock"))
        _refused(tmp_path, "socket")
    finally:
        sock.close()


def test_unreadable_file_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = put(tmp_path, "secret.txt")
    secret.chmod(0)
    if os.geteuid() == 0:  # root reads anything: make the open fail as it would for a user
        real_open = os.open

        def deny(path: object, flags: int, *args: object) -> int:
            if str(path) == str(secret):
                raise PermissionError(13, "Permission denied")
            return real_open(path, flags, *args)  # type: ignore[arg-type]

        monkeypatch.setattr(tree_mod.os, "open", deny)
    _refused(tmp_path, "cannot be read")


def test_missing_folder_refused(tmp_path: Path) -> None:
    _refused(tmp_path / "nope", "cannot be opened")


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a device node needs root")
def test_device_file_refused(tmp_path: Path) -> None:
    import stat as st

    os.mknod(tmp_path / "null", st.S_IFCHR | 0o600, os.makedev(1, 3))
    _refused(tmp_path, "device file")


def test_names_equal_after_nfc_refused(tmp_path: Path) -> None:
    put(tmp_path, "\u1112\u1161\u11ab.txt")  # 한 decomposed
    put(tmp_path, "한.txt")
    _refused(tmp_path, "Unicode NFC")


def test_emoji_names_kept_with_a_warning(tmp_path: Path) -> None:
    put(tmp_path, "웃음 😀.txt")
    warnings: list[str] = []
    tree = scan_content(tmp_path, warn=warnings.append)
    assert tree.files[0].relpath == ("웃음 😀.txt",)
    assert len(warnings) == 1 and "basic plane" in warnings[0]
