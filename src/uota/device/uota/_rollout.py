# Staged rollouts from static files: `rollout=P` in latest offers a release to P % of the
# fleet, and each device decides alone, from a bucket of its identity and the release. A
# device's answer never flips, raising P only adds devices, and each release draws anew.

from ._core import _hex, _sha256


def in_rollout(cfg, version, percent):
    """Whether this device is among the `percent` % (0 to 100) offered release `version`."""
    return bucket(device_identity(cfg), version) < percent * 100


def bucket(identity, version):
    """0 to 9999, uniform over identities, stable for a device and a release."""
    h = _sha256()
    h.update(("%s;%s" % (identity, version)).encode())
    return int.from_bytes(h.digest()[:4], "big") % 10000


def device_identity(cfg):
    """uota.cfg's device_id, else the board's machine.unique_id() in hex."""
    if "device_id" in cfg:
        return str(cfg["device_id"])
    try:
        from machine import unique_id
    except ImportError:  # CPython
        from ._cpython import unique_id
    return _hex(unique_id())
