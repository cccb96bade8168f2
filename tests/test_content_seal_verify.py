"""Seal, verify, and each kind of tampering caught with the file named (issue 7 acceptance)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
import yaml

from appliance.cli import main
from appliance.content import SignatureError, keys, open_pack
from appliance.content.manifest import parse_manifest
from tests.content_helpers import FILES, make_key, make_tree


@pytest.fixture
def sealed(tmp_path: Path) -> tuple[Path, Path, Path]:
    root = make_tree(tmp_path / "pack")
    private, public = make_key(tmp_path)
    assert main(["content", "seal", str(root), "--key", str(private)]) == 0
    return root, private, public


def verify(root: Path, public: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(["content", "verify", str(root), "--trusted-key", str(public)])
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_keygen_writes_private_0600_and_public(tmp_path: Path) -> None:
    out = tmp_path / "k"
    assert main(["content", "keygen", "--out", str(out)]) == 0
    assert b"PRIVATE KEY" in out.read_bytes()
    assert b"PUBLIC KEY" in (tmp_path / "k.pub").read_bytes()
    if sys.platform != "win32":
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    keys.load_private(out)
    keys.load_public(tmp_path / "k.pub")


def test_keygen_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "k"
    assert main(["content", "keygen", "--out", str(out)]) == 0
    before = out.read_bytes()
    assert main(["content", "keygen", "--out", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_seal_then_verify_ok(
    sealed: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, _, public = sealed
    manifest = parse_manifest((root / "manifest.yaml").read_bytes())
    assert sorted(f.path for f in manifest.files) == sorted(FILES)
    for f in manifest.files:
        assert f.size == len(FILES[f.path])
        assert f.algorithm == "blake3"
    rc, out = verify(root, public, capsys)
    assert rc == 0, out
    assert "ok:" in out


def test_tamper_one_byte_named(
    sealed: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, _, public = sealed
    target = root / "영상" / "시험 화면.mp4"
    data = bytearray(target.read_bytes())
    data[500] ^= 0x01
    target.write_bytes(bytes(data))
    rc, out = verify(root, public, capsys)
    assert rc == 1
    assert "changed: 영상/시험 화면.mp4" in out
    assert "책/" not in out  # untouched files are not blamed


def test_rename_one_file_named(
    sealed: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, _, public = sealed
    (root / "English" / "udhr.txt").rename(root / "English" / "udhr2.txt")
    rc, out = verify(root, public, capsys)
    assert rc == 1
    assert "missing: English/udhr.txt" in out
    assert "extra: English/udhr2.txt" in out


def test_added_file_named_but_junk_ignored(
    sealed: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, _, public = sealed
    (root / ".DS_Store").write_bytes(b"junk")  # macOS adds these on its own
    (root / "책" / "Thumbs.db").write_bytes(b"junk")
    rc, out = verify(root, public, capsys)
    assert rc == 0, out
    (root / "책" / "new.txt").write_bytes(b"smuggled in")
    rc, out = verify(root, public, capsys)
    assert rc == 1
    assert "extra: 책/new.txt" in out


def test_swapped_signature_named(
    sealed: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, private, public = sealed
    # A signature by the same key over another manifest
    other = make_tree(tmp_path / "other", {"a.txt": b"a"})
    assert main(["content", "seal", str(other), "--key", str(private)]) == 0
    (root / "manifest.yaml.sig").write_bytes((other / "manifest.yaml.sig").read_bytes())
    rc, out = verify(root, public, capsys)
    assert rc == 1
    assert "manifest.yaml.sig" in out
    assert "signature does not match" in out


def test_signature_by_untrusted_key_refused(
    sealed: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _, _ = sealed
    _, stranger = make_key(tmp_path, "stranger.key")
    rc, out = verify(root, stranger, capsys)
    assert rc == 1
    assert "manifest.yaml.sig" in out


def test_edited_manifest_refused(
    sealed: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, _, public = sealed
    text = (root / "manifest.yaml").read_text(encoding="utf-8")
    (root / "manifest.yaml").write_text(text.replace("version: '1'", "version: '2'"))
    rc, out = verify(root, public, capsys)
    assert rc == 1
    assert "signature does not match" in out


def test_missing_signature_refused_unless_allowed(sealed: tuple[Path, Path, Path]) -> None:
    root, _, public = sealed
    (root / "manifest.yaml.sig").unlink()
    trusted = keys.load_trusted([public])
    with pytest.raises(SignatureError, match="missing"):
        open_pack(root, trusted)
    pack = open_pack(root, trusted, allow_unsigned=True)
    assert pack.signer is None
    assert pack.verify() == []


def test_garbage_signature_refused_even_when_unsigned_allowed(
    sealed: tuple[Path, Path, Path],
) -> None:
    root, _, public = sealed
    (root / "manifest.yaml.sig").write_bytes(b"not base64 at all!!")
    with pytest.raises(SignatureError, match=r"manifest\.yaml\.sig"):
        open_pack(root, keys.load_trusted([public]), allow_unsigned=True)


def test_every_problem_listed_at_once(
    sealed: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, _, public = sealed
    (root / "읽어 보세요.txt").unlink()
    (root / "English" / "udhr.txt").write_bytes(b"All human beings are born free and equaL.\n")
    (root / "extra.bin").write_bytes(b"x")
    rc, out = verify(root, public, capsys)
    assert rc == 1
    assert "missing: 읽어 보세요.txt" in out
    assert "changed: English/udhr.txt" in out
    assert "extra: extra.bin" in out
    assert "3 problems found" in out


def test_seal_skips_junk_and_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = dict(FILES)
    files.update(
        {
            ".DS_Store": b"x",
            "__MACOSX/._a.mp4": b"x",
            "책/._세계인권선언.txt": b"x",
            "책/desktop.ini": b"x",
            "Thumbs.db": b"x",
        }
    )
    root = make_tree(tmp_path / "pack", files)
    private, _ = make_key(tmp_path)
    assert main(["content", "seal", str(root), "--key", str(private)]) == 0
    err = capsys.readouterr().err
    for junk in (".DS_Store", "__MACOSX", "책/._세계인권선언.txt", "책/desktop.ini", "Thumbs.db"):
        assert f"skipped hidden or system file {junk}" in err
    manifest = parse_manifest((root / "manifest.yaml").read_bytes())
    assert sorted(f.path for f in manifest.files) == sorted(FILES)


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
def test_seal_refuses_symlinks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_tree(tmp_path / "pack")
    (root / "passwd").symlink_to("/etc/passwd")
    private, _ = make_key(tmp_path)
    assert main(["content", "seal", str(root), "--key", str(private)]) == 1
    assert "passwd: is a symbolic link" in capsys.readouterr().err
    assert not (root / "manifest.yaml").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
def test_verify_does_not_follow_a_symlink_swapped_in(
    sealed: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, _, public = sealed
    target = root / "읽어 보세요.txt"
    copy = root.parent / "copy.txt"
    copy.write_bytes(target.read_bytes())
    target.unlink()
    target.symlink_to(copy)
    rc, out = verify(root, public, capsys)
    assert rc == 1
    assert "읽어 보세요.txt: is a symbolic link" in out


def test_decomposed_hangul_names_match(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A pack sealed on Linux (NFC) verifies when a Mac wrote the names decomposed (NFD)."""
    import unicodedata

    root = make_tree(tmp_path / "pack")
    private, public = make_key(tmp_path)
    assert main(["content", "seal", str(root), "--key", str(private)]) == 0
    nfc = root / "읽어 보세요.txt"
    nfc.rename(root / unicodedata.normalize("NFD", "읽어 보세요.txt"))
    rc, out = verify(root, public, capsys)
    assert rc == 0, out


def test_tiers_file_and_metadata(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "pack")
    private, public = make_key(tmp_path)
    tiers = tmp_path / "tiers.yaml"
    tiers.write_text(
        yaml.safe_dump(
            {
                "title": "시험",
                "version": "2026.11",
                "language": "ko",
                "tiers": [
                    {"name": "small", "min_capacity": "1GB", "items": ["읽어 보세요.txt", "책"]},
                    {"name": "big", "min_capacity": "8GB", "items": ["영상", "English"]},
                ],
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    rc = main(["content", "seal", str(root), "--key", str(private), "--tiers", str(tiers)])
    assert rc == 0
    pack = open_pack(root, keys.load_trusted([public]))
    m = pack.manifest
    assert (m.title, m.version, m.language) == ("시험", "2026.11", "ko")
    assert [(t.name, t.min_capacity) for t in m.tiers] == [("small", 10**9), ("big", 8 * 10**9)]
    assert {f.path for f in m.tier_files(0)} == {"읽어 보세요.txt", "책/세계인권선언.txt"}
    assert {f.path for f in m.tier_files(1)} == set(FILES)
    small = pack.content_tree(0)
    assert {f.relpath for f in small.files} == {("읽어 보세요.txt",), ("책", "세계인권선언.txt")}
    assert all(f.source.read_bytes() == FILES["/".join(f.relpath)] for f in small.files)
    assert pack.content_tree(0) is small  # shared by every target of the tier


def test_tier_naming_unknown_item_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_tree(tmp_path / "pack")
    private, _ = make_key(tmp_path)
    tiers = tmp_path / "tiers.yaml"
    tiers.write_text("- {name: a, min_capacity: 1GB, items: [nope]}\n")
    rc = main(["content", "seal", str(root), "--key", str(private), "--tiers", str(tiers)])
    assert rc == 1
    assert "'nope', which is not in the pack" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root reads anything")
def test_seal_unreadable_file_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_tree(tmp_path / "pack")
    private, _ = make_key(tmp_path)
    (root / "읽어 보세요.txt").chmod(0)
    assert main(["content", "seal", str(root), "--key", str(private)]) == 1
    assert "읽어 보세요.txt: cannot be read" in capsys.readouterr().err


def test_seal_read_only_folder_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from appliance.content import seal as seal_module

    root = make_tree(tmp_path / "pack")
    private, _ = make_key(tmp_path)

    def refuse(path: Path, data: bytes) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(seal_module, "_atomic_write", refuse)
    assert main(["content", "seal", str(root), "--key", str(private)]) == 1
    assert "cannot write the manifest (Read-only file system)" in capsys.readouterr().err


def test_preflight_names_missing_without_hashing(sealed: tuple[Path, Path, Path]) -> None:
    from appliance.content import VerifyFailed

    root, _, public = sealed
    (root / "English" / "udhr.txt").unlink()
    pack = open_pack(root, keys.load_trusted([public]))
    with pytest.raises(VerifyFailed, match=r"missing: English/udhr\.txt"):
        pack.preflight()


def test_seal_and_check_refuse_a_private_key_in_the_content(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_tree(tmp_path / "pack")
    private, _ = make_key(tmp_path)
    (root / "책" / "notes.pem").write_bytes(private.read_bytes())
    assert main(["content", "seal", str(root), "--key", str(private)]) == 1
    assert "책/notes.pem: looks like a private key" in capsys.readouterr().err
    assert not (root / "manifest.yaml").exists()
    assert main(["content", "check", str(root), "--no-probe"]) == 1
    assert "error: 책/notes.pem: looks like a private key" in capsys.readouterr().out


def test_seal_warns_about_names_no_stick_can_hold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_tree(tmp_path / "pack", {"what?.txt": b"x", "ok.txt": b"y"})
    private, _ = make_key(tmp_path)
    assert main(["content", "seal", str(root), "--key", str(private)]) == 0
    err = capsys.readouterr().err
    assert "warning: what?.txt: the name contains characters FAT cannot hold: '?'" in err
