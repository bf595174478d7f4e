"""`uota rollout`: offer a published release to a share of the fleet.

`rollout=P` in `latest` offers the release to P % of the devices (0 pauses it, 100 or no
field offers it to all). Hosting stays static: each device decides from a bucket of its
identity (uota.cfg's `device_id`, else `machine.unique_id()`) and the release's version
(`device/uota/_rollout.py`), so its answer never flips, raising P only adds devices, and
each release draws anew. A signed `latest` is signed again, as the field is signed too.
"""

from pathlib import Path

from .build import LATEST_FILE, write_atomically
from .device.uota import _core, _latest
from .errors import CommandError


def set_rollout(dist, percent, key=None, signer=None, expires_days=None):
    """Give the `latest` of the release folder `dist` the rollout `percent`; sign it again
    with `key` (and `signer`) when it is signed. Returns the new line."""
    if not 0 <= percent <= 100:
        raise CommandError("the rollout is a percentage: 0 to 100, not {}".format(percent))
    latest_path = Path(dist) / LATEST_FILE
    try:
        line = latest_path.read_text().strip()
        named = _latest.parse_latest(line)[4]
    except (OSError, UnicodeDecodeError, _core.VerifyError) as error:
        raise CommandError("cannot read {}: {}".format(latest_path, error))
    if "sig" in named and not key:
        raise CommandError("{} is signed: give --key (or --key and --signer) to sign it again".format(latest_path))
    fields = [field for field in line.split(";") if field.partition("=")[0].strip() not in ("rollout", "sig")]
    if percent < 100:
        if len(fields) < 4:
            raise CommandError("{} has no SHA-256: a rollout goes after the fourth field".format(latest_path))
        fields.insert(4, "rollout={}".format(percent))
    line = ";".join(fields)
    if key:
        from .sign import sign_release

        return sign_release(dist, key, signer, expires_days, line=line)
    write_atomically(latest_path, (line + "\n").encode())
    return line


def add_arguments(parser):
    from .sign import add_signing_arguments

    parser.add_argument("dist", metavar="DIST", help="the release folder `uota build` wrote")
    parser.add_argument("percent", type=int, metavar="P", help="offer the release to P %% of devices (0 to 100)")
    add_signing_arguments(parser)


def run(args):
    """Offer a built release to P percent of the devices (signed again when it is signed)."""
    if (args.signer or args.expires is not None) and not args.key:
        raise CommandError("--signer and --expires sign the release: give --key too")
    line = set_rollout(args.dist, args.percent, args.key, args.signer, args.expires)
    print("{}: {}".format(Path(args.dist) / LATEST_FILE, line))
