"""Independent oracles: OpenSSL checks our signatures and makes ones we accept; sha256sum hashes.

A pack produced entirely by standard tools (sha256sum + openssl) must verify,
and a pack sealed by us must verify under OpenSSL: the format is not private
to this code base.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.cli import main
from tests.content_helpers import FILES, make_key, make_tree

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")


@needs_openssl
def test_openssl_verifies_our_signature(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "p")
    private, public = make_key(tmp_path)
    assert main(["content", "seal", str(root), "--key", str(private)]) == 0
    raw = tmp_path / "sig.bin"
    raw.write_bytes(base64.b64decode((root / "manifest.yaml.sig").read_bytes()))
    cmd = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(public), "-rawin"]
    ok = subprocess.run(
        [*cmd, "-in", str(root / "manifest.yaml"), "-sigfile", str(raw)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (tmp_path / "other.yaml").write_bytes((root / "manifest.yaml").read_bytes() + b"\n")
    bad = subprocess.run(
        [*cmd, "-in", str(tmp_path / "other.yaml"), "-sigfile", str(raw)],
        capture_output=True,
    )
    assert bad.returncode != 0


@needs_openssl
@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="no sha256sum")
def test_pack_made_with_sha256sum_and_openssl_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_tree(tmp_path / "p")
    key = tmp_path / "k.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True)
    pub = tmp_path / "k.pub"
    subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)], check=True)
    lines = [
        "format: flashstation-content-pack",
        "format_version: 1",
        "title: made by hand",
        "version: '1'",
        "date: '2026-11-25'",
        "language: ko",
        "files:",
    ]
    for rel in sorted(FILES):
        out = subprocess.run(
            ["sha256sum", str(root / rel)], capture_output=True, text=True, check=True
        )
        digest = out.stdout.split()[0]
        lines.append(f'- {{path: "{rel}", size: {len(FILES[rel])}, sha256: {digest}}}')
    (root / "manifest.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    raw = tmp_path / "sig.bin"
    sign = ["openssl", "pkeyutl", "-sign", "-inkey", str(key), "-rawin"]
    subprocess.run([*sign, "-in", str(root / "manifest.yaml"), "-out", str(raw)], check=True)
    (root / "manifest.yaml.sig").write_bytes(base64.b64encode(raw.read_bytes()) + b"\n")
    assert main(["content", "verify", str(root), "--trusted-key", str(pub)]) == 0
    (root / "책" / "세계인권선언.txt").write_bytes(b"changed")
    capsys.readouterr()
    assert main(["content", "verify", str(root), "--trusted-key", str(pub)]) == 1
    assert "changed: 책/세계인권선언.txt" in capsys.readouterr().err
