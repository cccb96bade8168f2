"""Helpers shared by the content tests: a small pack folder and a key pair."""

from __future__ import annotations

from pathlib import Path

from appliance.content import keys

FILES = {
    "영상/시험 화면.mp4": b"\x00\x01video" * 1000,
    "책/세계인권선언.txt": "모든 사람은 자유롭게 태어났다.\n".encode(),
    "English/udhr.txt": b"All human beings are born free and equal.\n",
    "읽어 보세요.txt": b"hello\n",
}


def make_tree(root: Path, files: dict[str, bytes] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in (files or FILES).items():
        path = root.joinpath(*rel.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def make_key(tmp: Path, name: str = "curator.key") -> tuple[Path, Path]:
    private, public, _ = keys.generate(tmp / name)
    return private, public
