"""One waiter's keep-alive HTTP/1.1 connection for its long polls, on plain asyncio streams (PollConnection)."""

import asyncio
import json

from bench.show import BENCH_KEY


class PollConnection:
    """One waiter's keep-alive HTTP/1.1 connection, on plain asyncio streams.

    Not httpx: its pool does work in proportion to its open connections on every response, which at
    thousands of connections stalls the load generator (tests/waiting/test_many_long_polls.py).
    """

    def __init__(self, surge):
        self.surge = surge
        self.reader = self.writer = None

    async def get(self, path, on_headers):
        """(status, body) of GET `path`; on_headers() is called once the status line and headers are in."""
        reused = self.writer is not None
        if not reused:
            await self._connect()
        try:
            return await self._exchange(path, on_headers)
        except (ConnectionError, asyncio.IncompleteReadError):
            if not reused:
                raise
        # The server closed the idle keep-alive connection just as the request went: ask again on a new one.
        self.surge.reconnects += 1
        self.close()
        await self._connect()
        return await self._exchange(path, on_headers)

    async def _connect(self):
        self.reader, self.writer = await asyncio.open_connection(self.surge.host, self.surge.port, limit=2**20)

    async def _exchange(self, path, on_headers):
        host = self.surge.host
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {BENCH_KEY}\r\n\r\n"
        self.writer.write(request.encode())
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionResetError("the server closed the connection")
        status = int(status_line.split()[1])
        headers = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        on_headers()
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int((await self.reader.readline()).strip(), 16):
                body += (await self.reader.readexactly(size + 2))[:-2]
            await self.reader.readexactly(2)
        else:
            body = await self.reader.readexactly(int(headers.get("content-length", 0)))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, json.loads(body) if body else None

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None
