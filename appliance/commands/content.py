"""``flashstation content``: keygen, seal, verify and check content packs.

These run on the curators' laptops (Linux, macOS, Windows with Python), so
nothing here may use Linux-only calls: the mount helpers of
:mod:`appliance.content.mount` are deliberately not imported.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tqdm import tqdm

from appliance.config.schema import ContentConfig
from appliance.content import keys
from appliance.content.check import check_pack
from appliance.content.errors import SignatureError
from appliance.content.pack import open_pack, read_unverified
from appliance.content.planner import allocate
from appliance.content.seal import PackInfo, read_tiers_file, seal
from appliance.errors import UsageError
from appliance.units import format_size, parse_size

#: the filesystem label stations recognise as content media by default (content.labels)
CONTENT_LABEL = ContentConfig().labels[0]


def register(sub: Any) -> None:
    parser = sub.add_parser("content", help="seal, verify and check content packs")
    csub = parser.add_subparsers(dest="content_command", metavar="ACTION", required=True)

    p = csub.add_parser("keygen", help="make an Ed25519 signing key (KEY and KEY.pub)")
    p.add_argument("--out", required=True, type=Path, metavar="KEY", help="private key file")
    p.set_defaults(handler=keygen_command)

    p = csub.add_parser("seal", help="hash every file of DIR, write and sign its manifest")
    p.add_argument("dir", type=Path, metavar="DIR")
    p.add_argument("--key", required=True, type=Path, metavar="KEY", help="private key file")
    p.add_argument("--tiers", type=Path, metavar="FILE", help="YAML file with the tiers")
    p.add_argument("--title", help="pack title (default: the tiers file's, or DIR's name)")
    p.add_argument("--pack-version", dest="pack_version", help="pack version (default 1)")
    p.add_argument("--language", help="content language, e.g. ko (default und)")
    p.set_defaults(handler=seal_command)

    p = csub.add_parser("verify", help="check DIR's signature and every file's hash")
    p.add_argument("dir", type=Path, metavar="DIR")
    p.add_argument(
        "--trusted-key",
        dest="trusted_keys",
        action="append",
        required=True,
        type=Path,
        metavar="PUB",
        help="public key to trust (repeatable)",
    )
    p.set_defaults(handler=verify_command)

    p = csub.add_parser("tiers", help="show which tier drives of given capacities would get")
    p.add_argument("dir", type=Path, metavar="DIR")
    p.add_argument(
        "--capacity",
        action="append",
        required=True,
        metavar="SIZE",
        help="a drive's real capacity, e.g. 7.8GB (repeatable)",
    )
    p.add_argument("--headroom", type=float, default=None, help="default: config default")
    p.set_defaults(handler=tiers_command)

    p = csub.add_parser("check", help="report what would not reach or play on a reader")
    p.add_argument("dir", type=Path, metavar="DIR")
    p.add_argument(
        "--headroom",
        type=float,
        default=None,
        help="fraction of each tier's minimum capacity kept free (default: config default)",
    )
    p.add_argument("--tiers", type=Path, metavar="FILE", help="tiers to check (default: manifest)")
    p.add_argument("--no-probe", action="store_true", help="skip ffprobe and exiftool")
    p.set_defaults(handler=check_command)


@contextmanager
def _bar(desc: str) -> Iterator[Callable[[int], Callable[[int], None]]]:
    bars: list[tqdm[Any]] = []

    def factory(total: int) -> Callable[[int], None]:
        bar = tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc=desc,
            file=sys.stderr,
            leave=False,
            disable=None,
        )
        bars.append(bar)

        def update(n: int) -> None:
            bar.update(n)

        return update

    try:
        yield factory
    finally:
        for bar in bars:
            bar.close()


def keygen_command(args: argparse.Namespace) -> int:
    private, public, kid = keys.generate(args.out)
    print(f"private key: {private} (keep it secret; never copy it to a station)")
    print(f"public key:  {public} (give this to stations: content.trusted_keys)")
    print(f"key id:      {kid}")
    return 0


def seal_command(args: argparse.Namespace) -> int:
    info = read_tiers_file(args.tiers) if args.tiers else PackInfo()
    info = PackInfo(
        title=args.title or info.title,
        version=args.pack_version or info.version,
        date=info.date,
        language=args.language or info.language,
        tiers_raw=info.tiers_raw,
    )
    with _bar("hashing") as factory:
        result = seal(
            args.dir,
            args.key,
            info,
            progress_factory=factory,
            tiers_where=str(args.tiers or "tiers"),
        )
    for junk in result.skipped:
        print(f"warning: skipped hidden or system file {junk}", file=sys.stderr)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    m = result.manifest
    tiers = ", ".join(t.name for t in m.effective_tiers())
    print(
        f"sealed {m.title!r} version {m.version}: {len(m.files)} files, "
        f"{format_size(m.total_bytes)}, tiers: {tiers}"
    )
    print(f"wrote {result.manifest_path} and {result.signature_path}")
    print(
        f"reminder: label the SSD's filesystem {CONTENT_LABEL} so stations never wipe it "
        "(docs/content-pack.md)"
    )
    return 0


def verify_command(args: argparse.Namespace) -> int:
    trusted = keys.load_trusted(args.trusted_keys)
    try:
        pack = open_pack(args.dir, trusted)
    except SignatureError as exc:
        print(f"BAD: {exc}", file=sys.stderr)
        return 1
    with _bar("verifying") as factory:
        bar: list[Callable[[int], None]] = []
        last = [0]

        def progress(done: int, total: int, _path: str) -> None:
            if not bar:
                bar.append(factory(total))
            bar[0](done - last[0])
            last[0] = done

        problems = pack.verify(progress=progress)
    for problem in problems:
        print(f"BAD: {problem}", file=sys.stderr)
    for junk in pack.listing.junk:
        print(f"note: ignored hidden or system file {junk}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem{'s' * (len(problems) != 1)} found", file=sys.stderr)
        return 1
    assert pack.signer is not None
    m = pack.manifest
    print(
        f"ok: {m.title!r} version {m.version}, {len(m.files)} files, "
        f"{format_size(m.total_bytes)}, signed by key {pack.signer.id}"
    )
    return 0


def check_command(args: argparse.Namespace) -> int:
    headroom = ContentConfig().headroom if args.headroom is None else args.headroom
    if not 0.0 <= headroom <= 0.5:
        raise UsageError(f"--headroom {headroom} must be between 0 and 0.5")
    if not args.dir.is_dir():
        raise UsageError(f"{args.dir}: not a folder")
    tiers_raw = read_tiers_file(args.tiers).tiers_raw if args.tiers else None
    with tqdm(desc="probing", unit=" files", file=sys.stderr, leave=False, disable=None) as bar:

        def tick(_path: str) -> None:
            bar.update(1)

        report = check_pack(
            args.dir,
            headroom=headroom,
            tiers_raw=tiers_raw,
            probe=not args.no_probe,
            progress=tick,
        )
    for note in report.notes:
        print(f"note: {note}")
    for warning in report.warnings:
        print(f"warning: {warning}")
    for error in report.errors:
        print(f"error: {error}")
    e, w = len(report.errors), len(report.warnings)
    print(f"{e} error{'s' * (e != 1)}, {w} warning{'s' * (w != 1)}")
    return 1 if report.errors else 0


def tiers_command(args: argparse.Namespace) -> int:
    headroom = ContentConfig().headroom if args.headroom is None else args.headroom
    capacities = {text: parse_size(text) for text in args.capacity}
    pack = read_unverified(args.dir)
    alloc = allocate(pack, capacities, headroom=headroom)
    print(f"{pack.manifest.title!r} (signature not checked), {headroom:.0%} headroom:")
    for text in args.capacity:
        group = alloc.group_of(text)
        if group is None:
            print(f"  {text:>10}: nothing fits ({alloc.unfit[text]})")
        else:
            size = format_size(group.tree.total_bytes)
            print(f"  {text:>10}: tier {group.tier.name!r} ({len(group.tree.files)} files, {size})")
    return 1 if alloc.unfit else 0
