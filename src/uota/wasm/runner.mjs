// Runs a script on the MicroPython WebAssembly port as a simulated device.
//
//   node runner.mjs '<json config>'
//   config: {package, root, script, moduleDirs, heapsize}
//
// `root` (a host folder) becomes the device's /flash and the working
// directory; it is written back after the run, whatever happened, so device
// state persists across runs ("boots"). `moduleDirs` are copied to /modules/N
// and put first on sys.path. The modules `socket` and `ssl` (plus `usocket`
// and `ussl` on 1.20) talk to the host network through net_worker.mjs; on
// 1.20, `time` gains the time() its WebAssembly port lacks.
// Exit status: 0 when the script finished, 1 when it raised, or the
// SystemExit code.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";

const here = path.dirname(fileURLToPath(import.meta.url));
const config = JSON.parse(process.argv[2]);

const FLASH = "/flash";
const LIB = "/lib";
const DATA_CAPACITY = 1024 * 1024;

// ---- filesystem ------------------------------------------------------------

function makeDirs(FS, memPath) {
  let current = "";
  for (const part of memPath.split("/").filter(Boolean)) {
    current += "/" + part;
    if (!FS.analyzePath(current).exists) FS.mkdir(current);
  }
}

function copyIn(FS, hostDir, memDir) {
  makeDirs(FS, memDir);
  for (const name of fs.readdirSync(hostDir)) {
    if (name === "__pycache__") continue;
    const hostPath = path.join(hostDir, name);
    const memPath = memDir + "/" + name;
    if (fs.statSync(hostPath).isDirectory()) copyIn(FS, hostPath, memPath);
    else FS.writeFile(memPath, fs.readFileSync(hostPath));
  }
}

// Makes hostDir an exact copy of memDir, touching only what changed.
function mirrorOut(FS, memDir, hostDir) {
  fs.mkdirSync(hostDir, { recursive: true });
  const memEntries = new Map();
  for (const name of FS.readdir(memDir)) {
    if (name === "." || name === "..") continue;
    memEntries.set(name, FS.isDir(FS.stat(memDir + "/" + name).mode));
  }
  for (const entry of fs.readdirSync(hostDir, { withFileTypes: true })) {
    const memIsDir = memEntries.get(entry.name);
    if (memIsDir === undefined || memIsDir !== entry.isDirectory()) {
      fs.rmSync(path.join(hostDir, entry.name), { recursive: true, force: true });
    }
  }
  for (const [name, isDir] of memEntries) {
    const memPath = memDir + "/" + name;
    const hostPath = path.join(hostDir, name);
    if (isDir) {
      mirrorOut(FS, memPath, hostPath);
      continue;
    }
    const content = FS.readFile(memPath);
    const unchanged = fs.existsSync(hostPath) && Buffer.from(content).equals(fs.readFileSync(hostPath));
    if (!unchanged) fs.writeFileSync(hostPath, content);
  }
}

// ---- network bridge ----------------------------------------------------------

// Synchronous facade over net_worker.mjs, registered as the `_uota_net`
// module. Buffers are passed as (address, length) in the wasm heap — Python
// takes the address with uctypes.addressof — so no Python object crosses the
// boundary and a read allocates nothing on the MicroPython heap.
// Why not pass the bytes/bytearray/memoryview itself: ints, floats, str and
// None convert to JS values, but any other Python object reaches JS as an
// opaque proxy — 1.29: a PyProxy whose toJs() *copies* the buffer out with
// HEAPU8.slice; 1.20: no buffer access at all, and every call appends to a
// proxy table on the Python heap (measured: 4 bytes per call) that only JS
// garbage collection clears, which never happens during a synchronous run.
function startNetwork(heap) {
  const control = new Int32Array(new SharedArrayBuffer(8));
  const dataBuffer = new SharedArrayBuffer(DATA_CAPACITY);
  const data = new Uint8Array(dataBuffer);
  const worker = new Worker(new URL("./net_worker.mjs", import.meta.url), {
    workerData: { control: control.buffer, data: dataBuffer },
  });
  worker.unref();

  function request(message) {
    Atomics.store(control, 0, 0);
    worker.postMessage(message);
    while (Atomics.load(control, 0) === 0) Atomics.wait(control, 0, 0);
    return control[1];
  }

  const module = {
    // -> dotted IPv4 string, or null when the name does not resolve.
    resolve(host) {
      const length = request({ op: "resolve", host });
      return length < 0 ? null : new TextDecoder().decode(data.slice(0, length));
    },
    connect: (host, port, timeoutMs) => request({ op: "connect", host, port, timeoutMs }),
    send: (handle, address, count, timeoutMs) =>
      request({ op: "send", handle, bytes: heap().slice(address, address + count), timeoutMs }),
    // Copies received bytes straight into the Python buffer at `address`.
    recv_into(handle, address, count, exact, timeoutMs) {
      let done = 0;
      while (done < count) {
        const n = request({ op: "recv", handle, count: count - done, exact: !!exact, timeoutMs });
        if (n < 0) return n;
        if (n === 0) break;
        heap().set(data.subarray(0, n), address + done);
        done += n;
        if (!exact) break;
      }
      return done;
    },
    available: (handle, count, timeoutMs) => request({ op: "available", handle, count, timeoutMs }),
    line_length: (handle, limit, timeoutMs) => request({ op: "lineLength", handle, limit, timeoutMs }),
    start_tls: (handle, serverName, timeoutMs) => request({ op: "startTls", handle, serverName, timeoutMs }),
    // -> certificate length; copies it to `address` when `capacity` suffices.
    peer_certificate(handle, address, capacity) {
      const length = request({ op: "peerCertificate", handle });
      if (length > 0 && length <= capacity) heap().set(data.subarray(0, length), address);
      return length;
    },
    close: (handle) => request({ op: "close", handle }),
  };
  return { module, worker };
}

// ---- main ----------------------------------------------------------------------

const MAIN = `
import sys, _uota_runner

def _uota_main():
    try:
        exec(compile(_uota_runner.source(), "main.py", "exec"), {"__name__": "__main__"})
        return 0
    except SystemExit as e:
        code = e.args[0] if e.args else None
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)
        return 1
    except BaseException as e:
        sys.print_exception(e, sys.stderr)
        return 1

_uota_runner.finish(_uota_main())
`;

// The 1.20 port's time module lacks time(), which real device ports have and
// the frozen logging module calls. A file overrides the u-prefixed built-in.
const TIME_WITH_CLOCK = `from utime import *
import _uota_runner

def time():
    return _uota_runner.time()
`;

function writeLine(fd, text) {
  fs.writeSync(fd, text + "\n");
}

// Output that did not end with a newline is still in the line buffer.
function flushPartialLine(buffer, fd) {
  if (buffer && buffer.length) fs.writeSync(fd, Buffer.from(buffer));
}

async function main() {
  const packageJson = JSON.parse(fs.readFileSync(path.join(config.package, "package.json"), "utf8"));
  const isOldApi = packageJson.version.startsWith("1.20.");
  const { loadMicroPython } = await import(pathToFileURL(path.join(config.package, "micropython.mjs")).href);
  const mp = await loadMicroPython({
    heapsize: config.heapsize,
    url: path.join(config.package, "micropython.wasm"),
    stdout: (line) => writeLine(1, line),
    stderr: (line) => writeLine(2, line),
  });
  const FS = mp.FS;
  const heap = () => mp._module.HEAPU8;

  copyIn(FS, config.root, FLASH);
  const modulePaths = config.moduleDirs.map((dir, index) => {
    copyIn(FS, dir, `/modules/${index}`);
    return `/modules/${index}`;
  });
  makeDirs(FS, LIB);
  FS.writeFile(LIB + "/socket.py", fs.readFileSync(path.join(here, "socket_bridge.py")));
  FS.writeFile(LIB + "/ssl.py", fs.readFileSync(path.join(here, "ssl_bridge.py")));
  if (isOldApi) {
    FS.writeFile(LIB + "/usocket.py", "from socket import *\n");
    FS.writeFile(LIB + "/ussl.py", "from ssl import *\n");
    FS.writeFile(LIB + "/time.py", TIME_WITH_CLOCK);
  }

  const network = startNetwork(heap);
  mp.registerJsModule("_uota_net", network.module);
  let status = 1;
  const script = fs.readFileSync(config.script, "utf8");
  mp.registerJsModule("_uota_runner", {
    source: () => script,
    finish: (code) => { status = code; },
    time: () => Math.floor(Date.now() / 1000),
  });

  try {
    mp.runPython(`import os, sys\nos.chdir(${JSON.stringify(FLASH)})\nsys.path[0:0] = ${JSON.stringify(modulePaths)}\n`);
    mp.runPython(MAIN);
  } catch (error) {
    writeLine(2, `uota runner: ${error.stack || error}`);
    status = 1;
  } finally {
    flushPartialLine(mp._module._stdoutBuffer, 1);
    flushPartialLine(mp._module._stderrBuffer, 2);
    mirrorOut(FS, FLASH, config.root);
    await network.worker.terminate();
  }
  return status;
}

process.exitCode = await main();
