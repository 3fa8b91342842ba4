#!/usr/bin/env python3
"""The least work a fresh runner must do to take a build's blobs from a Redis tier.

Run after a build has pushed to the Redis at PORT (bench/remote-latency.sh runs it at its
end): every blob under `v1/cas/` is fetched in one pipelined batch on one connection,
decompressed into files by one `zstd -d` process (the stored values are larder's KV
encoding: a tag byte, 0 raw or 1 zstd, then the bytes), and each file's SHA-256 is
checked (hashlib, OpenSSL's, with the CPU's SHA instructions). No key, no record, no
store, no cargo: what is left of a fresh runner's cost when larder's own logic is taken
away. Prints each step's wall and CPU seconds (the fetch's CPU is this process's; the
Redis server's is on top) and their sums.

Usage: remote-floor.py [PORT]   (default 26379, scripts/remote-servers.sh's Redis)
"""

import hashlib
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time

TAG_RAW, TAG_ZSTD = 0, 1


def command(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Replies:
    """RESP replies read from a socket: bulk strings and arrays of them."""

    def __init__(self, sock):
        self.sock, self.buf = sock, bytearray()

    def _fill(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError("redis closed the connection")
            self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill(len(self.buf) + 1)
        i = self.buf.index(b"\r\n")
        line = bytes(self.buf[:i])
        del self.buf[: i + 2]
        if line.startswith(b"-"):
            raise RuntimeError(line.decode())
        return line

    def bulk(self):
        n = int(self.line()[1:])
        self._fill(n + 2)
        value = bytes(self.buf[:n])
        del self.buf[: n + 2]
        return value


def cpu_self():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 26379
    sock = socket.create_connection(("127.0.0.1", port))
    replies = Replies(sock)
    sock.sendall(command("KEYS", "v1/cas/*"))
    keys = [replies.bulk().decode() for _ in range(int(replies.line()[1:]))]
    if not keys:
        sys.exit("remote-floor: no blobs under v1/cas/ in this Redis")
    rows = []

    wall, cpu = time.monotonic(), cpu_self()
    sock.sendall(b"".join(command("GET", k) for k in keys))
    values = [replies.bulk() for _ in keys]
    fetched = sum(map(len, values))
    rows.append((f"fetch {len(keys)} blobs, {fetched / 2**20:.1f} MiB", time.monotonic() - wall, cpu_self() - cpu))

    with tempfile.TemporaryDirectory(prefix="larder-floor-") as tmp:
        packed, out = os.path.join(tmp, "packed"), os.path.join(tmp, "out")
        os.mkdir(packed)
        os.mkdir(out)
        zstd = []
        for key, value in zip(keys, values):
            name = key.rsplit("/", 1)[-1]
            if value[0] == TAG_ZSTD:
                path = os.path.join(packed, name + ".zst")
                zstd.append(path)
            elif value[0] == TAG_RAW:
                path = os.path.join(out, name)
            else:
                sys.exit(f"remote-floor: {key}: tag {value[0]} (chunked values are memcached's)")
            with open(path, "wb") as f:
                f.write(memoryview(value)[1:])
        wall, cpu = time.monotonic(), cpu_children()
        subprocess.run(["zstd", "-d", "-q", "--output-dir-flat", out, *zstd], check=True)
        written = sum(os.path.getsize(os.path.join(out, n)) for n in os.listdir(out))
        rows.append((f"decompress {len(zstd)}, write {written / 2**20:.1f} MiB", time.monotonic() - wall, cpu_children() - cpu))

        wall, cpu = time.monotonic(), cpu_self()
        for name in os.listdir(out):
            with open(os.path.join(out, name), "rb") as f:
                if hashlib.file_digest(f, "sha256").hexdigest() != name:
                    sys.exit(f"remote-floor: {name}: content does not match its digest")
        rows.append(("SHA-256 of every blob", time.monotonic() - wall, cpu_self() - cpu))

    rows.append(("sum", sum(r[1] for r in rows), sum(r[2] for r in rows)))
    print(f"{'floor step':<40} {'wall s':>7} {'CPU s':>7}")
    for label, w, c in rows:
        print(f"{label:<40} {w:>7.3f} {c:>7.3f}")


if __name__ == "__main__":
    main()
