#!/usr/bin/env python3
"""A TCP delay line on loopback: every byte is delivered DELAY_MS after it was read, in
each direction, so a round trip through it costs 2 * DELAY_MS more (no bandwidth limit,
order kept). Used by bench/remote-latency.sh to put a server "10 ms away".

    bench/delay-proxy.py LISTEN_PORT TARGET_HOST:TARGET_PORT DELAY_MS
"""
import asyncio
import sys
import time


async def pump(reader, writer, delay):
    queue = asyncio.Queue()

    async def deliver():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        try:
            writer.write_eof()
        except OSError:
            pass

    sender = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(1 << 16)
            if not data:
                break
            queue.put_nowait((time.monotonic() + delay, data))
    except OSError:
        pass
    queue.put_nowait((time.monotonic() + delay, None))
    try:
        await sender
    except OSError:
        pass


async def main():
    listen = int(sys.argv[1])
    host, port = sys.argv[2].rsplit(":", 1)
    delay = float(sys.argv[3]) / 1000.0

    async def handle(cr, cw):
        try:
            ur, uw = await asyncio.open_connection(host, int(port))
        except OSError:
            cw.close()
            return
        await asyncio.gather(pump(cr, uw, delay), pump(ur, cw, delay))
        for w in (cw, uw):
            w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
