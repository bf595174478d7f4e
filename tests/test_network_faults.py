"""A bad network between the device and a real server never leaves a broken install.

Between the device and `uota serve` sits a fault-injecting proxy (fault_proxy.py): it cuts,
resets, stalls, trickles or corrupts the responses for `latest` and the archive. Each case
ends with the device unchanged (the old release byte for byte; a partial download kept to
resume is allowed) or fully updated.

Cut points are boundaries (the first byte, inside the status line, the end of the headers,
the first body byte, the last byte) and fractions of the response from a fixed seed. Every
runtime gets the boundaries that matter most; CPython gets the full sample and each
MicroPython a different small part of it, which keeps the file within a few minutes.
"""

import math
import random
import re
import tempfile
import time
from pathlib import Path

import pytest

from uota.runtime import RUNTIMES
from uota.serve import start_server

from support.fault_proxy import (
    STALL_SECONDS,
    drop_after,
    fetch_response,
    flip_byte,
    head_length,
    reset_after,
    stall_after,
    trickle,
    truncate_body,
)
from support.fixtures_runtime import RUNTIME_IDS
from support.standard import NEW, expected_after_update, make_device, release

TIMEOUT = 1  # the device's, in seconds: short, so that stalls cost little
_RNG = random.Random(2024)
SAMPLES = ["sample-%.3f" % _RNG.random() for _ in range(8)]  # fractions of the response

BOUNDARIES = {
    "first-byte": lambda head, total: 0,
    "status-line": lambda head, total: 10,  # inside "200"
    "end-of-headers": lambda head, total: head - 1,  # the blank line's LF is missing
    "header-body-boundary": lambda head, total: head,
    "first-body-byte": lambda head, total: head + 1,
    "last-byte": lambda head, total: total - 1,
}
EVERY_POINT = list(BOUNDARIES) + SAMPLES
FEW_POINTS = {
    "cpython": EVERY_POINT,
    "micropython-1.20": ["first-byte", "header-body-boundary", "last-byte"] + SAMPLES[:2],
    "micropython-1.29": ["status-line", "end-of-headers", "first-body-byte"] + SAMPLES[2:4],
}


def sweep(paths, points=FEW_POINTS):
    """(runtime, path, where) cases: each runtime with its own points."""
    return [
        pytest.param(runtime, path, where, id="%s-%s-%s" % (RUNTIME_IDS[runtime], path, where))
        for runtime in RUNTIMES
        for path in paths
        for where in points[runtime]
    ]


def position(where, response, in_body=False):
    """The byte offset in response that a point's name stands for; samples are fractions
    of the whole response, or of its body alone."""
    head = head_length(response)
    if where in BOUNDARIES:
        return BOUNDARIES[where](head, len(response))
    start = head if in_body else 0
    return start + int(float(where[len("sample-"):]) * (len(response) - start))


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    # One server for the file (stopping one takes half a second); each test has its folder.
    shared_server = start_server(tmp_path_factory.mktemp("releases"))
    yield shared_server
    shared_server.shutdown()


@pytest.fixture
def release_dir(shared_server):
    return Path(tempfile.mkdtemp(dir=shared_server.dist))


@pytest.fixture
def proxy(shared_server, fault_proxy):
    return fault_proxy(shared_server.url)


def url_path(release_dir, name):
    """The path the device asks for to get `name` from release_dir."""
    return "/%s/%s" % (release_dir.name, name)


def faulty_device(runtime, tmp_path, proxy, release_dir):
    return make_device(runtime, tmp_path, proxy.url + release_dir.name + "/", timeout=TIMEOUT)


def aim(proxy, release_dir, archive, path):
    """The URL path of `latest` or the archive, and the response the server sends for it."""
    target = url_path(release_dir, "latest" if path == "latest" else archive.name)
    return target, fetch_response(proxy.url, target)


def assert_whole(device, before, archive, log, kept_may_be_corrupt=False):
    """Old release byte for byte (plus, maybe, a partial download to resume) or the new one.

    Returns which of the two it is. A corrupted response can leave a corrupt partial
    download (`kept_may_be_corrupt`): the hash refuses it when it completes.
    """
    after = device.files()
    if after == expected_after_update(before, NEW):
        return "updated"
    kept = {name: after.pop(name) for name in ("fw.tmp", "uota.state") if name in after}
    assert after == before, log
    if not kept_may_be_corrupt:
        assert archive.read_bytes().startswith(kept.get("fw.tmp", b"")), "the kept download is not the archive's start"
    return "unchanged"


RESET_POINTS = {
    "cpython": ["first-byte", "status-line", "header-body-boundary", "last-byte"] + SAMPLES[:2],
    "micropython-1.20": ["header-body-boundary", SAMPLES[2]],
    "micropython-1.29": ["status-line", SAMPLES[3]],
}
CUTS = {"dropped": drop_after, "reset": reset_after}  # a FIN, or an RST


def cut_sweep():
    """(cut, runtime, path, where) cases: a dropped connection at every runtime's points,
    a reset one at fewer (RESET_POINTS)."""
    return [
        pytest.param(cut, *case.values, id="%s-%s" % (cut, case.id))
        for cut, points in (("dropped", FEW_POINTS), ("reset", RESET_POINTS))
        for case in sweep(["latest", "archive"], points)
    ]


@pytest.mark.parametrize("cut, runtime, path, where", cut_sweep())
def test_connection_dropped_or_reset_anywhere_changes_nothing(runtime, tmp_path, release_dir, proxy, cut, path, where):
    archive = release(release_dir, tmp_path)
    target, response = aim(proxy, release_dir, archive, path)
    proxy.faults[target] = CUTS[cut](position(where, response))
    device = faulty_device(runtime, tmp_path, proxy, release_dir)
    before = device.files()

    result, log = device.update()

    assert result == "False False", log
    assert assert_whole(device, before, archive, log) == "unchanged"


def flip_at(n):
    return flip_byte(n, 1 << n % 8)  # one bit, a different one along the response


@pytest.mark.parametrize("runtime, path, where", sweep(["latest", "archive"]))
def test_flipped_bit_is_refused_or_harmless(runtime, tmp_path, release_dir, proxy, path, where):
    archive = release(release_dir, tmp_path)
    target, response = aim(proxy, release_dir, archive, path)
    proxy.faults[target] = flip_at(position(where, response))
    device = faulty_device(runtime, tmp_path, proxy, release_dir)
    before = device.files()

    result, log = device.update()

    assert assert_whole(device, before, archive, log, kept_may_be_corrupt=True) == (
        "updated" if result == "True True" else "unchanged"
    ), log
    # A flip in the header block can shift where the body starts: the kept part is then
    # not the archive's start, the resumed download fails its hash and the next starts over.
    del proxy.faults[target]
    results = [device.update()[0] for _ in range(2)] if result != "True True" else [result]
    assert "True True" in results, results
    assert device.files() == expected_after_update(before, NEW)


BODY_POINTS = {
    "cpython": ["header-body-boundary", "first-body-byte", "last-byte"] + SAMPLES,
    "micropython-1.20": ["first-body-byte"] + SAMPLES[4:6],
    "micropython-1.29": ["last-byte"] + SAMPLES[6:8],
}


@pytest.mark.parametrize("runtime, path, where", sweep(["archive"], BODY_POINTS))
def test_corrupt_archive_without_hash_is_caught_before_anything_is_written(runtime, tmp_path, release_dir, proxy, path, where):
    archive = release(release_dir, tmp_path, with_hash=False)
    target, response = aim(proxy, release_dir, archive, path)
    proxy.faults[target] = flip_at(position(where, response, in_body=True))
    device = faulty_device(runtime, tmp_path, proxy, release_dir)
    before = device.files()

    result, log = device.update()

    assert assert_whole(device, before, archive, log) == ("updated" if result == "True True" else "unchanged"), log


@pytest.mark.parametrize("with_hash", [True, False], ids=["hash", "no-hash"])
@pytest.mark.parametrize("runtime, path, where", sweep(["latest", "archive"], BODY_POINTS))
def test_body_cut_short_without_a_length_is_refused_or_harmless(runtime, tmp_path, release_dir, proxy, path, where, with_hash):
    # Without Content-Length only the hash, the gzip trailer or the latest grammar can tell.
    archive = release(release_dir, tmp_path, with_hash=with_hash)
    target, response = aim(proxy, release_dir, archive, path)
    proxy.faults[target] = truncate_body(position(where, response, in_body=True) - head_length(response))
    device = faulty_device(runtime, tmp_path, proxy, release_dir)
    before = device.files()

    result, log = device.update()

    assert assert_whole(device, before, archive, log) == ("updated" if result == "True True" else "unchanged"), log


STALL_POINTS = {
    "cpython": ["first-byte", "header-body-boundary", SAMPLES[0]],
    "micropython-1.20": ["status-line"],
    "micropython-1.29": ["first-body-byte"],
}


@pytest.mark.parametrize("runtime, path, where", sweep(["latest", "archive"], STALL_POINTS))
def test_stalled_server_is_given_up_after_the_timeout(runtime, tmp_path, release_dir, proxy, path, where):
    archive = release(release_dir, tmp_path)
    target, response = aim(proxy, release_dir, archive, path)
    proxy.faults[target] = stall_after(min(position(where, response), len(response) - 1))
    device = faulty_device(runtime, tmp_path, proxy, release_dir)
    before = device.files()

    started = time.monotonic()
    result, log = device.update()
    elapsed = time.monotonic() - started

    assert result == "False False", log
    assert elapsed < STALL_SECONDS, "the device waited for the stall to end instead of its timeout"
    assert assert_whole(device, before, archive, log) == "unchanged"


def test_trickle_slower_in_total_than_the_timeout_still_updates(runtime, tmp_path, release_dir, proxy):
    # The timeout bounds each read, not the whole download.
    archive = release(release_dir, tmp_path)
    proxy.faults[url_path(release_dir, archive.name)] = trickle(0.002)
    device = faulty_device(runtime, tmp_path, proxy, release_dir)
    before = device.files()

    started = time.monotonic()
    result, log = device.update()

    assert time.monotonic() - started > TIMEOUT
    assert result == "True True", log
    assert device.files() == expected_after_update(before, NEW)


BIG = dict(NEW, **{"blob.bin": random.Random(7).randbytes(48 * 1024)})  # does not compress
CUT_EVERY = 6000  # bytes of response per connection, headers included

RETRY_UNTIL_DOWNLOADED = """
for tries in range(1, %d):
    if uota.check_for_updates():
        break
print(tries, uota.install_new_firmware())
"""


def archive_ranges(proxy, release_dir, archive):
    """The Range header of each archive request the device made ('' for none)."""
    heads = [head for head in proxy.requests if head.startswith("GET %s " % url_path(release_dir, archive.name))]
    return [(re.findall(r"(?im)^range: *(.*?)\r$", head) or [""])[0] for head in heads]


def test_flaky_link_gets_a_large_release_through_by_resuming(runtime, tmp_path, release_dir, proxy):
    archive = release(release_dir, tmp_path, files=BIG)
    size = archive.stat().st_size
    proxy.faults[url_path(release_dir, archive.name)] = drop_after(CUT_EVERY)
    device = faulty_device(runtime, tmp_path, proxy, release_dir)
    before = device.files()

    last_line, log = device.call(RETRY_UNTIL_DOWNLOADED % 40)
    tries, installed = last_line.split()

    assert installed == "True", log
    assert math.ceil(size / CUT_EVERY) <= int(tries) <= math.ceil(size / (CUT_EVERY - 512))
    offsets = [int(r[len("bytes="):-1]) for r in archive_ranges(proxy, release_dir, archive)[1:]]
    assert offsets == sorted(set(offsets)) and len(offsets) == int(tries) - 1  # each try goes on
    assert device.files() == expected_after_update(before, BIG)


def test_flaky_link_that_loses_range_starts_over_and_never_installs_a_patchwork(runtime, tmp_path, release_dir, proxy):
    # A server answering 200 to a Range request sends the whole file: the device starts over.
    archive = release(release_dir, tmp_path, files=BIG)
    proxy.faults[url_path(release_dir, archive.name)] = drop_after(CUT_EVERY)
    proxy.strip_range = True
    device = faulty_device(runtime, tmp_path, proxy, release_dir)
    before = device.files()

    last_line, log = device.call(RETRY_UNTIL_DOWNLOADED % 4)

    assert last_line.split() == ["3", "False"], log
    assert all(archive_ranges(proxy, release_dir, archive)[1:]), "the device did not ask to resume"
    assert assert_whole(device, before, archive, log) == "unchanged"
    assert len(device.files()["fw.tmp"]) < CUT_EVERY
