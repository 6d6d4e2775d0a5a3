#!/usr/bin/env python3
"""A fake OpenAI-compatible model server for benchmarks: answers every POST to
/v1/chat/completions after a fixed latency with a small completion. asyncio, so hundreds of
connections wait at once without a thread each (a threaded server was the bottleneck of the
measurement); keep-alive; 127.0.0.1 only. Prints its port on the first line of stdout; stops
by itself after --lifetime seconds.

    python3 bench/fake_llm_server.py --latency-ms 100 --lifetime 900
"""
import argparse
import asyncio
import json

ANSWER = json.dumps({
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "model": "bench-model",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13},
}).encode()
RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(ANSWER)).encode() + b"\r\n\r\n" + ANSWER)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency-ms", type=float, default=100.0)
    ap.add_argument("--lifetime", type=float, default=900.0)
    args = ap.parse_args()
    latency = args.latency_ms / 1000.0

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                await reader.readexactly(length)
                if latency:
                    await asyncio.sleep(latency)
                writer.write(RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    try:
        await asyncio.wait_for(server.serve_forever(), args.lifetime)
    except asyncio.TimeoutError:
        pass


if __name__ == "__main__":
    asyncio.run(main())
