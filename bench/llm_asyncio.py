#!/usr/bin/env python3
"""N concurrent chat completions with nothing but asyncio streams (one connection per request,
HTTP/1.1 written by hand): the true floor, as httpx's connection pool slows down with
hundreds of requests waiting on it. Prints the wall time in seconds.

    python3 bench/llm_asyncio.py BASE_URL N
"""
import asyncio
import json
import sys
import time
from urllib.parse import urlsplit


async def one(host, port, path, i):
    body = json.dumps({"model": "bench-model",
                       "messages": [{"role": "user", "content": f"item {i}"}]}).encode()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"POST {path}/chat/completions HTTP/1.1\r\nhost: {host}\r\n"
                 f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
                 "connection: close\r\n\r\n".encode() + body)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n")
                  if l.lower().startswith(b"content-length"))
    answer = json.loads(await reader.readexactly(length))
    writer.close()
    return answer["choices"][0]["message"]["content"]


async def main(base, n):
    url = urlsplit(base)
    start = time.perf_counter()
    answers = await asyncio.gather(*(one(url.hostname, url.port, url.path, i) for i in range(n)))
    elapsed = time.perf_counter() - start
    assert len(answers) == n
    print(f"{elapsed:.3f}")


asyncio.run(main(sys.argv[1], int(sys.argv[2])))
