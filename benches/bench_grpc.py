"""Decode tokens/s over gRPC: aggregate at 1, 4, 8 and 16 concurrent streams, and gRPC ÷ in-process.

    python benches/bench_grpc.py [--model PATH] [--tokens 64] [--streams 1,4,8,16] [--repeats 2]

Starts a real server on an ephemeral loopback port in this process (its own event-loop thread) and
drives it with blocking stubs from one thread per stream, the way separate clients would. Aggregate
tokens/s counts every generated token over the wall time from the first request sent to the last
stream finished (prefill included, as a client sees it). The single-stream ratio compares decode
tokens/s over gRPC with the same generation through `Engine.generate` in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

PROMPT = "Write a long story about a lighthouse keeper who finds a message in a bottle."


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="GGUF file (default: the pulled default model)")
    ap.add_argument("--tokens", type=int, default=64, help="tokens generated per stream")
    ap.add_argument("--streams", default="1,4,8,16")
    ap.add_argument("--repeats", type=int, default=2, help="best of N for each row")
    args = ap.parse_args()

    from smolrt import Engine, Finished
    from smolrt.server import Settings, start
    from smolrt.v1 import smolrt_pb2 as pb
    from smolrt.v1 import smolrt_pb2_grpc as rpc

    engine = Engine.load(args.model)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    running = asyncio.run_coroutine_threadsafe(start(Settings(grpc_port=0, http_port=-1), engine), loop).result()
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    stub = rpc.InferenceStub(channel)
    counts = [int(n) for n in args.streams.split(",")]
    print(f"model {Path(engine.path).name}, {args.tokens} tokens per stream, best of {args.repeats}", file=sys.stderr)

    def one_stream(i: int) -> tuple[int, float]:
        req = pb.GenerateRequest(
            prompt=PROMPT,
            sampling=pb.SamplingParameters(temperature=0.8, seed=i),
            stopping=pb.StoppingParameters(max_tokens=args.tokens, ignore_eos=True),
        )
        last = None
        for ev in stub.Generate(req):
            last = ev
        assert last is not None and last.WhichOneof("kind") == "finished"
        return last.finished.usage.completion_tokens, last.finished.timings.decode_tokens_per_s

    # Warm-up: first touch of the weights, thread pools, the channel.
    one_stream(0)

    rows = []
    single_grpc = 0.0
    for n in counts:
        best = 0.0
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            with ThreadPoolExecutor(n) as pool:
                results = list(pool.map(one_stream, range(n)))
            wall = time.perf_counter() - t0
            best = max(best, sum(tokens for tokens, _ in results) / wall)
            if n == 1:
                single_grpc = max(single_grpc, results[0][1])
        rows.append((n, best))

    def in_process() -> float:
        gen = engine.generate(PROMPT, max_tokens=args.tokens, ignore_eos=True, temperature=0.8, seed=0)
        *_, last = list(gen)
        assert isinstance(last, Finished)
        return last.timings.decode_tokens_per_s

    single_lib = max(in_process() for _ in range(args.repeats))

    print(f"{'streams':>8} {'aggregate tok/s':>16} {'per stream':>11} {'vs 1 stream':>12}")
    base = rows[0][1] if rows else 1.0
    for n, agg in rows:
        print(f"{n:>8} {agg:>16.1f} {agg / n:>11.1f} {agg / base:>11.2f}x")
    print()
    print(
        f"single-stream decode tok/s: gRPC {single_grpc:.1f}, in-process {single_lib:.1f}, "
        f"ratio {single_grpc / single_lib:.3f}"
    )

    channel.close()
    asyncio.run_coroutine_threadsafe(running.stop(0), loop).result()
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
