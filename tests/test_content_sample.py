"""The bundled sample pack: sealed with the TEST key, same files as sample/, sane tiers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.config.schema import ContentConfig
from appliance.content import keys, open_pack
from appliance.content.inserted import TEST_KEY_IDS, trusted_keys

DATA = Path(__file__).resolve().parent.parent / "appliance" / "data"
PACK = DATA / "sample-pack"
TEST_PUB = DATA / "test-keys" / "sample-pack-TEST-ONLY.key.pub"
TEST_KEY = DATA / "test-keys" / "sample-pack-TEST-ONLY.key"
RULES = Path(__file__).resolve().parent.parent / "image-build" / "udev"


def test_sample_pack_verifies_with_the_test_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["content", "verify", str(PACK), "--trusted-key", str(TEST_PUB)]) == 0
    assert "signed by key c1cc7b490d5d962c" in capsys.readouterr().out


def test_sample_pack_holds_sample_unchanged() -> None:
    sample = {
        p.relative_to(DATA / "sample"): p for p in (DATA / "sample").rglob("*") if p.is_file()
    }
    assert sample
    for rel, path in sample.items():
        assert (PACK / rel).read_bytes() == path.read_bytes(), rel


def test_sample_pack_tiers_and_no_manifest_on_sticks() -> None:
    pack = open_pack(PACK, keys.load_trusted([TEST_PUB]))
    assert [t.name for t in pack.tiers()] == ["basic", "more"]
    basic = {"/".join(f.relpath) for f in pack.content_tree(0).files}
    more = {"/".join(f.relpath) for f in pack.content_tree(1).files}
    assert basic < more
    assert more - basic == {"영상/시험 화면 20초.mp4"}
    for tree in (pack.content_tree(0), pack.content_tree(1)):
        names = {f.relpath[-1] for f in tree.files}
        assert "manifest.yaml" not in names and "manifest.yaml.sig" not in names


def test_test_key_is_named_and_not_trusted_by_default(caplog: pytest.LogCaptureFixture) -> None:
    assert "TEST-ONLY" in TEST_KEY.name
    assert ContentConfig().trusted_keys == []
    key = keys.load_public(TEST_PUB)
    assert key.id in TEST_KEY_IDS
    trusted_keys(ContentConfig(trusted_keys=[str(TEST_PUB)]))
    assert "TEST-ONLY sample key" in caplog.text


_RULE_PART = re.compile(r'^[A-Z_]+(\{[A-Za-z_]+\})?(==|!=|=|\+=|:=)"[^"]*"$')


def test_udev_rule_syntax() -> None:
    text = (RULES / "99-flashstation-no-automount.rules").read_text()
    labels, gotos = set(), set()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for part in (p.strip() for p in line.split(", ")):
            assert _RULE_PART.match(part), part
            if part.startswith("LABEL="):
                labels.add(part.split('"')[1])
            if part.startswith("GOTO="):
                gotos.add(part.split('"')[1])
    assert gotos <= labels
    assert 'ENV{UDISKS_IGNORE}="1"' in text


def test_tiers_command_shows_tier_per_capacity(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["content", "tiers", str(PACK), "--capacity", "64MiB", "--capacity", "128MiB"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "64MiB: tier 'basic' (6 files" in out
    assert "128MiB: tier 'more' (7 files" in out
    assert main([*argv, "--capacity", "60MiB"]) == 1
    assert "60MiB: nothing fits" in capsys.readouterr().out
