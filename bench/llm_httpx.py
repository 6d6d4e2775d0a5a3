#!/usr/bin/env python3
"""The floor for N concurrent chat completions: plain asyncio + httpx, every request in flight
at once. Prints the wall time in seconds.

    python3 bench/llm_httpx.py BASE_URL N
"""
import asyncio
import sys
import time

import httpx


async def main(base, n):
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        async def one(i):
            r = await client.post("/chat/completions", json={
                "model": "bench-model",
                "messages": [{"role": "user", "content": f"item {i}"}],
            })
            r.raise_for_status()
            return r.json()["choices"][0]["message"]["content"]

        start = time.perf_counter()
        answers = await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.perf_counter() - start
    assert len(answers) == n
    print(f"{elapsed:.3f}")


asyncio.run(main(sys.argv[1], int(sys.argv[2])))
