"""``teleop keys new|trust|list``: the lab keys that sign bundles and the ones a station trusts."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from teleop.arguments import add_data_dir
from teleop.export.signing import KEYS_DIR, BundleKeyError, key_id, load_public, new_key
from teleop.session import resolve_data_root


def _new(args: argparse.Namespace) -> int:
    private, public, kid = new_key(Path(args.private_key))
    print(f"key {kid}: private {private} (keep it secret; mode 0600), public {public}")
    print(f"stations that should accept its bundles: teleop keys trust {public}")
    return 0


def _trust(args: argparse.Namespace) -> int:
    key = load_public(Path(args.public_key))
    kid = key_id(key)
    keys = resolve_data_root(args.data_dir) / KEYS_DIR
    dest = keys / f"{kid}.pub"
    if dest.exists():
        print(f"key {kid}: already trusted ({dest})")
        return 0
    try:
        keys.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.public_key, dest)
    except OSError as exc:
        raise BundleKeyError(f"{dest}: cannot write ({exc.strerror})") from None
    print(f"key {kid}: trusted ({dest})")
    return 0


def _list(args: argparse.Namespace) -> int:
    keys = resolve_data_root(args.data_dir) / KEYS_DIR
    paths = sorted(keys.glob("*.pub")) if keys.is_dir() else []
    if not paths:
        print(f"no trusted keys in {keys}")
    for path in paths:
        print(f"{key_id(load_public(path))}  {path}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``keys`` to the ``teleop`` command line."""
    k = sub.add_parser("keys", help="lab keys: sign bundles, and trust the keys of your lab")
    ksub = k.add_subparsers(dest="keys", required=True, metavar="ACTION")
    n = ksub.add_parser("new", help="make an Ed25519 key pair: NAME.key (secret) and NAME.pub")
    n.add_argument("private_key", metavar="NAME.key", help="where to write the private key")
    n.set_defaults(func=_new)
    t = ksub.add_parser("trust", help="trust bundles signed by this public key on this station")
    t.add_argument("public_key", metavar="FILE.pub")
    add_data_dir(t)
    t.set_defaults(func=_trust)
    ls = ksub.add_parser("list", help="the public keys this station trusts")
    add_data_dir(ls)
    ls.set_defaults(func=_list)
