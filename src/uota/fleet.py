"""`uota fleet`: the fleet as the server's access log saw it.

Devices ask for `latest` with headers that say who they are (X-Uota-Device), what they run
(X-Uota-Version) and how their last update went (X-Uota-Result: ok, pending:V, installing:V
or failed:V). nginx records them with NGINX_LOG_FORMAT (docs/hosting.md shows where it goes);
`uota fleet ACCESS_LOG` prints, per device, when it was last seen, its version and its last
result, and per version how many devices run it and how many failed to install it.
"""

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .errors import CommandError

NGINX_LOG_FORMAT = (
    "log_format uota '$time_iso8601 \"$request\" $status "
    "\"$http_x_uota_device\" \"$http_x_uota_version\" \"$http_x_uota_result\"';"
)
# nginx writes a quote inside a variable as \x22, so a field never holds one.
_LINE = re.compile(r'(\S+) "(\S+) (\S+)[^"]*" (\d{3}) "([^"]*)" "([^"]*)" "([^"]*)"$')


@dataclass(frozen=True)
class Sighting:
    """A device's latest request for `latest` in the log."""

    device: str
    seen: str
    version: str
    result: str


def read_log(lines):
    """{device: its last Sighting} from access log lines in NGINX_LOG_FORMAT; requests
    for anything but `latest`, and requests without a device, are skipped."""
    devices = {}
    for line in lines:
        match = _LINE.match(line.rstrip("\n"))
        if not match:
            continue
        seen, method, target, _status, device, version, result = match.groups()
        if method != "GET" or not target.split("?")[0].endswith("/latest") or device in ("", "-"):
            continue
        devices[device] = Sighting(device, seen, version, result)
    return devices


def by_version(devices):
    """{version: (devices running it, devices whose last result is a failure to install it)}."""
    running = Counter(sighting.version for sighting in devices.values())
    failed = Counter(sighting.result.partition(":")[2] for sighting in devices.values()
                     if sighting.result.startswith("failed:"))
    return {version: (running[version], failed[version]) for version in sorted(set(running) | set(failed))}


def format_fleet(devices):
    lines = ["{} devices".format(len(devices)), "",
             "{:<24} {:<26} {:<12} {}".format("device", "last seen", "version", "last result")]
    for sighting in sorted(devices.values(), key=lambda s: s.device):
        lines.append("{:<24} {:<26} {:<12} {}".format(sighting.device, sighting.seen, sighting.version, sighting.result))
    lines += ["", "{:<12} {:>8} {:>8}".format("version", "devices", "failed")]
    for version, (running, failed) in by_version(devices).items():
        lines.append("{:<12} {:>8} {:>8}".format(version, running, failed))
    return lines


def add_arguments(parser):
    parser.add_argument("log", metavar="ACCESS_LOG",
                        help="an nginx access log written with uota's log format (docs/hosting.md)")


def run(args):
    """Report the fleet from a web server's access log: devices, versions, failures."""
    try:
        with Path(args.log).open(encoding="utf-8", errors="replace") as log:
            devices = read_log(log)
    except OSError as error:
        raise CommandError("cannot read {}: {}".format(args.log, error.strerror or error))
    if not devices:
        raise CommandError("{} has no request for latest by a device: write it with uota's log format "
                           "(docs/hosting.md)".format(args.log))
    for line in format_fleet(devices):
        print(line)
