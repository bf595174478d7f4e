# The device as one of a fleet, with static hosting: its identity, the report it sends
# with each request for latest (so any web server's access log records the fleet), and
# staged rollouts: `rollout=P` in latest offers a release to P % of the fleet, and each
# device decides alone, from a bucket of its identity and the release. A device's answer
# never flips, raising P only adds devices, and each release draws anew.

from ._core import _hex, _plain, _read_state, _read_version, _sha256


def in_rollout(cfg, version, percent):
    # Whether this device is among the `percent` % (0 to 100) offered release `version`.
    return bucket(device_identity(cfg), version) < percent * 100


def bucket(identity, version):
    # 0 to 9999, uniform over identities, stable for a device and a release.
    h = _sha256()
    h.update(("%s;%s" % (identity, version)).encode())
    return int.from_bytes(h.digest()[:4], "big") % 10000


def device_identity(cfg):
    # uota.cfg's device_id, else the board's machine.unique_id() in hex ("unknown" on a
    # MicroPython port without one).
    if "device_id" in cfg:
        return str(cfg["device_id"])
    try:
        from machine import unique_id
    except ImportError:  # CPython, and MicroPython's unix and WebAssembly ports
        try:
            from ._cpython import unique_id
        except ImportError:
            return "unknown"
    return _hex(unique_id())


def report(cfg):
    # The headers that tell the server who asks for latest: identity, version, last result
    # (ok, or pending:V, installing:V, failed:V from the install journal).
    identity = device_identity(cfg)
    if len(identity) > 64 or not _plain(identity, "._-:"):
        h = _sha256()
        h.update(identity.encode())
        identity = "sha256:" + _hex(h.digest())[:16]
    version = _read_version() or "none"
    if len(version) > 64 or not _plain(version, ".+-_"):
        version = "invalid"
    state = _read_state()
    result = "ok"
    if state:
        result = "%s:%s" % ({"partial": "pending", "ready": "pending", "retry": "installing"}.get(state[0], state[0]), state[1])
    return {"X-Uota-Device": identity, "X-Uota-Version": version, "X-Uota-Result": result}

