"""nginx on 127.0.0.1 serving a release folder, for benchmarks: `with nginx(dist) as (url, log)`.

The configuration is the tests' (tests/support/fixtures_servers.py NGINX_CONF) with room for a fleet's
connections and an access log of wire bytes: one "REQUEST STATUS REQUEST_BYTES SENT_BYTES"
line per request.
"""

import contextlib
import subprocess
import tempfile
from pathlib import Path

from support.fixtures_servers import NGINX_CONF, free_port, _nginx_binary, _stop, _wait_for_port

WIRE_LOG = "log_format wire '$request $status $request_length $bytes_sent'; access_log {work}/access.log wire;"
CONF = (NGINX_CONF
        .replace("worker_connections 64;", "worker_connections 4096;")
        .replace("access_log {work}/access.log;", WIRE_LOG))


@contextlib.contextmanager
def nginx(dist):
    """Yields (base URL, path of the access log); both are gone when the block ends."""
    with tempfile.TemporaryDirectory(prefix="uota-nginx-") as tmp:
        work, port = Path(tmp), free_port()
        conf = work / "nginx.conf"
        conf.write_text(CONF.format(work=work, port=port, ssl="", tls_files="", dist=Path(dist).resolve()))
        process = subprocess.Popen([_nginx_binary(), "-c", str(conf), "-p", str(work), "-e", str(work / "error.log")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if not _wait_for_port(port, process, work / "error.log"):
                raise RuntimeError("nginx did not start: " + (work / "error.log").read_text())
            yield "http://127.0.0.1:%d/" % port, work / "access.log"
        finally:
            _stop(process)


def wire_log(path):
    """[(request line, status, request bytes, response bytes)] from the access log."""
    entries = []
    for line in Path(path).read_text().splitlines():
        *request, status, received, sent = line.split()
        entries.append((" ".join(request), int(status), int(received), int(sent)))
    return entries
