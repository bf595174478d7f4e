"""The same update done the naive way, for comparison only: each response read whole into RAM
(`sock.read()`), the archive hashed and written in one piece, then unpacked with
`deflate.DeflateIO` and its 32 KB window, each member read whole. Run on MicroPython 1.29 next
to uota's own update of the same release (bench/memory.py), as allocation volume.

    PYTHONPATH=tests python bench/naive.py
"""

import tempfile
from pathlib import Path

from memory import measure_update, old_device, publish_release, reference_release, result_of, serve
from uota.runtime import run_device

ROOT = Path(__file__).resolve().parent.parent

RUNTIME = "micropython-1.29"
NAIVE_UPDATE = """
import gc, socket, hashlib, deflate, os
gc.collect()
before = gc.mem_alloc()

def get(path):
    sock = socket.socket()
    sock.connect(socket.getaddrinfo("127.0.0.1", %d)[0][-1])
    sock.write(b"GET /" + path + b" HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n")
    response = sock.read()
    sock.close()
    return response[response.find(b"\\r\\n\\r\\n") + 4:]

version, name, _, sha = get(b"latest").decode().strip().split(";")
archive = get(name.encode())
assert hashlib.sha256(archive).digest().hex() == sha
with open("fw.tmp", "wb") as f:
    f.write(archive)
del archive
with open("fw.tmp", "rb") as f:
    tar = deflate.DeflateIO(f, deflate.GZIP, 15)
    while True:
        header = tar.read(512)
        if not header or not header[0]:
            break
        path = header[:100].rstrip(b"\\0").decode().rstrip("/")
        size = int(header[124:136].rstrip(b"\\0 ") or b"0", 8)
        data = tar.read(size)
        tar.read(-size %% 512)
        if header[156] == ord("5"):
            try:
                os.mkdir(path)
            except OSError:
                pass
        else:
            with open(path, "wb") as out:
                out.write(data)
os.remove("fw.tmp")
print("RESULT", gc.mem_alloc() - before)
"""


def measure_naive(src, work):
    dist = Path(tempfile.mkdtemp(dir=work))
    publish_release(src, dist, "tar")
    server = serve(dist)
    try:
        device = old_device(Path(tempfile.mkdtemp(dir=work)), "unused")
        run = run_device(RUNTIME, device, NAIVE_UPDATE % server.server_address[1], heapsize=16 * 1024 * 1024)
        return int(result_of(run)[0])
    finally:
        server.shutdown()


def main():
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("naive update against uota's, on %s: allocation volume, KB" % RUNTIME)
        print("%-8s %10s %12s %12s %10s %10s" % ("release", "naive", "uota tar", "uota wbits12", "naive/tar", "naive/12"))
        for scale in (1, 4):
            src = work / ("src%d" % scale)
            reference_release(src, scale)
            naive = measure_naive(src, work)
            uota_tar = sum(measure_update(RUNTIME, src, "tar", work)[1:])
            uota_small = sum(measure_update(RUNTIME, src, 12, work)[1:])
            print("%-8s %10.1f %12.1f %12.1f %10.1f %10.1f" % (
                "x%d" % scale, naive / 1024, uota_tar / 1024, uota_small / 1024, naive / uota_tar, naive / uota_small))
        print("  the naive largest single allocation alone is the archive (see bench/wire.py sizes).")


if __name__ == "__main__":
    main()
