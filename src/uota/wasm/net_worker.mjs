// Network I/O for the MicroPython runner (see runner.mjs).
//
// The main thread is blocked synchronously inside a Python call, so it cannot
// run Node's event loop. It posts one request at a time to this worker and
// sleeps in Atomics.wait on `control[0]`; the worker performs the I/O and
// answers through the shared memory:
//   control[0]  1 once the answer is ready
//   control[1]  result: >= 0 on success, -errno on failure
//   data        payload bytes of the answer (received data, strings, certs)
// Received bytes are buffered here per connection until Python asks for them.
import dns from "node:dns";
import net from "node:net";
import tls from "node:tls";
import { parentPort, workerData } from "node:worker_threads";

const control = new Int32Array(workerData.control);
const data = new Uint8Array(workerData.data);

// MicroPython (Linux) errno numbers.
const EAGAIN = 11, EBADF = 9, EIO = 5, ENOTCONN = 107, ETIMEDOUT = 110;
const ERRNO_BY_CODE = {
  EPIPE: 32, ENETUNREACH: 101, ECONNABORTED: 103, ECONNRESET: 104,
  ENOTCONN: 107, ETIMEDOUT: 110, ECONNREFUSED: 111, EHOSTUNREACH: 113,
  EADDRNOTAVAIL: 99, EADDRINUSE: 98,
};
// Stop reading from the peer while this much is buffered and unread.
const HIGH_WATER = 4 * 1024 * 1024;

const connections = new Map();
let nextHandle = 1;

function reply(result) {
  control[1] = result;
  Atomics.store(control, 0, 1);
  Atomics.notify(control, 0);
}

// A reply function that ignores all but its first call, for requests that
// race an I/O callback against a timeout.
function replyOnce() {
  let answered = false;
  return (result) => {
    if (!answered) {
      answered = true;
      reply(result);
    }
  };
}

function errnoOf(error) {
  return ERRNO_BY_CODE[error.code] ?? EIO;
}

// Calls `onTimeout` after `timeoutMs`; a negative timeout means wait forever.
function startTimer(timeoutMs, onTimeout) {
  return timeoutMs >= 0 ? setTimeout(onTimeout, timeoutMs) : null;
}

function attach(conn, socket) {
  conn.socket = socket;
  socket.on("data", (chunk) => {
    if (conn.socket !== socket) return;
    conn.chunks.push(chunk);
    conn.buffered += chunk.length;
    if (conn.buffered > HIGH_WATER) socket.pause();
    conn.wake();
  });
  socket.on("end", () => {
    if (conn.socket !== socket) return;
    conn.ended = true;
    conn.wake();
  });
  socket.on("error", (error) => {
    if (conn.socket !== socket) return;
    conn.error = error;
    conn.wake();
  });
  socket.on("close", () => {
    if (conn.socket !== socket) return;
    conn.ended = true;
    conn.wake();
  });
}

function newConnection(socket) {
  const conn = {
    socket: null, chunks: [], buffered: 0, ended: false, error: null,
    // Re-evaluates the request currently waiting for this connection, if any.
    waiter: null,
    wake() { if (this.waiter) this.waiter(); },
  };
  attach(conn, socket);
  return conn;
}

// Moves up to `count` buffered bytes into the shared data buffer.
function take(conn, count) {
  let copied = 0;
  while (copied < count) {
    const chunk = conn.chunks[0];
    const part = Math.min(chunk.length, count - copied);
    data.set(chunk.subarray(0, part), copied);
    copied += part;
    if (part === chunk.length) conn.chunks.shift();
    else conn.chunks[0] = chunk.subarray(part);
  }
  conn.buffered -= copied;
  if (conn.buffered <= HIGH_WATER && conn.socket.isPaused()) conn.socket.resume();
  return copied;
}

// Answers once `ready(conn)` holds or the peer ended/failed, with `finish`
// computing the answer; the timeout restarts whenever new data arrives,
// like a per-recv socket timeout.
function whenReadable(conn, timeoutMs, ready, finish) {
  const settled = () => ready(conn) || conn.ended || conn.error;
  if (settled()) return reply(finish());
  if (timeoutMs === 0) return reply(-EAGAIN);
  let timer = null;
  const arm = () => {
    clearTimeout(timer);
    timer = startTimer(timeoutMs, () => {
      conn.waiter = null;
      reply(-ETIMEDOUT);
    });
  };
  conn.waiter = () => {
    if (!settled()) return arm();
    clearTimeout(timer);
    conn.waiter = null;
    reply(finish());
  };
  arm();
}

// Data first, then the error or end-of-stream.
function drain(conn, count) {
  const n = Math.min(count, conn.buffered);
  if (n > 0) return take(conn, n);
  if (conn.error) return -errnoOf(conn.error);
  return 0;
}

function newlineLength(conn, limit) {
  let seen = 0;
  for (const chunk of conn.chunks) {
    const index = chunk.indexOf(10);
    if (index >= 0 && seen + index < limit) return seen + index + 1;
    seen += chunk.length;
    if (seen >= limit) return limit;
  }
  return -1;
}

const operations = {
  resolve({ host }) {
    dns.lookup(host, { family: 4 }, (error, address) => {
      if (error) return reply(-1);
      const written = new TextEncoder().encodeInto(address, data).written;
      reply(written);
    });
  },

  connect({ host, port, timeoutMs }) {
    // Half-open: the peer shutting down its side must not end ours.
    const socket = net.connect({ host, port, allowHalfOpen: true });
    const answer = replyOnce();
    const fail = (errno) => {
      clearTimeout(timer);
      socket.destroy();
      answer(-errno);
    };
    const timer = startTimer(timeoutMs, () => fail(ETIMEDOUT));
    socket.once("error", (error) => fail(errnoOf(error)));
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      socket.setNoDelay(true);
      const handle = nextHandle++;
      connections.set(handle, newConnection(socket));
      answer(handle);
    });
  },

  send({ handle, bytes, timeoutMs }) {
    const conn = connections.get(handle);
    if (!conn) return reply(-EBADF);
    if (conn.error) return reply(-errnoOf(conn.error));
    if (!conn.socket.writable) return reply(-ENOTCONN);
    const answer = replyOnce();
    const timer = startTimer(timeoutMs, () => answer(-ETIMEDOUT));
    conn.socket.write(bytes, (error) => {
      clearTimeout(timer);
      answer(error ? -errnoOf(error) : bytes.length);
    });
  },

  // Up to `count` bytes; with `exact`, waits for all of them unless the
  // stream ends first (MicroPython's readinto/read semantics).
  recv({ handle, count, exact, timeoutMs }) {
    const conn = connections.get(handle);
    if (!conn) return reply(-EBADF);
    const wanted = Math.min(count, data.length);
    const minimum = exact ? wanted : 1;
    whenReadable(conn, timeoutMs, (c) => c.buffered >= minimum, () => drain(conn, wanted));
  },

  // Waits for some data and reports how much (up to `count`) is buffered.
  available({ handle, count, timeoutMs }) {
    const conn = connections.get(handle);
    if (!conn) return reply(-EBADF);
    const finish = () => (conn.buffered > 0 ? Math.min(count, conn.buffered) : drain(conn, 0));
    whenReadable(conn, timeoutMs, (c) => c.buffered > 0, finish);
  },

  // Waits for a complete line and reports its length including "\n".
  lineLength({ handle, limit, timeoutMs }) {
    const conn = connections.get(handle);
    if (!conn) return reply(-EBADF);
    const finish = () => {
      const length = newlineLength(conn, limit);
      if (length >= 0) return length;
      return conn.buffered > 0 ? Math.min(limit, conn.buffered) : drain(conn, 0);
    };
    whenReadable(conn, timeoutMs, (c) => newlineLength(c, limit) >= 0, finish);
  },

  startTls({ handle, serverName, timeoutMs }) {
    const conn = connections.get(handle);
    if (!conn) return reply(-EBADF);
    const raw = conn.socket;
    const secure = tls.connect({
      socket: raw,
      // SNI must be a host name, never an IP address.
      servername: serverName && !net.isIP(serverName) ? serverName : undefined,
      // Like MicroPython's default CERT_NONE.
      rejectUnauthorized: false,
    });
    const answer = replyOnce();
    const fail = (errno) => {
      clearTimeout(timer);
      secure.destroy();
      answer(-errno);
    };
    const timer = startTimer(timeoutMs, () => fail(ETIMEDOUT));
    secure.once("error", (error) => fail(errnoOf(error)));
    secure.once("secureConnect", () => {
      clearTimeout(timer);
      secure.removeAllListeners("error");
      attach(conn, secure);
      answer(0);
    });
  },

  peerCertificate({ handle }) {
    const conn = connections.get(handle);
    if (!conn || !conn.socket.getPeerCertificate) return reply(-ENOTCONN);
    const der = conn.socket.getPeerCertificate(false)?.raw;
    if (!der) return reply(-ENOTCONN);
    data.set(der.subarray(0, data.length));
    reply(der.length);
  },

  close({ handle }) {
    const conn = connections.get(handle);
    if (conn) {
      connections.delete(handle);
      // end() sends FIN (and TLS close_notify); destroy frees it in any case.
      conn.socket.end(() => conn.socket.destroy());
      setTimeout(() => conn.socket.destroy(), 1000).unref();
    }
    reply(0);
  },
};

parentPort.on("message", (request) => {
  try {
    operations[request.op](request);
  } catch (error) {
    reply(-errnoOf(error));
  }
});
