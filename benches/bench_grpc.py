"""Decode tokens/s over gRPC: aggregate at 1, 4, 8 and 16 concurrent streams, and gRPC ÷ in-process.

    python benches/bench_grpc.py [--model PATH] [--tokens 64] [--streams 1,4,8,16] [--repeats 2]

Starts a real server on an ephemeral loopback port in this process (its own event-loop thread) and
drives it from a separate client process per row (this script with --client), one thread and
blocking stub per stream, the way separate clients would: a client inside the server's process
would also share its interpreter lock. Aggregate tokens/s counts every generated token over the
wall time from the first request sent to the last stream finished (prefill included, as a client
sees it). The single-stream ratio compares the server's decode tokens/s for a stream over gRPC
with the same generation through `Engine.generate` in-process. Each row also gives the client's
time to first token (the median and the last of its streams, all sent at once). Last, where each
row's CPU goes per token (its first repeat): each server thread's (from /proc) and the client
process's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import grpc.experimental

PROMPT = "Write a long story about a lighthouse keeper who finds a message in a bottle."


def client(port: int, streams: int, tokens: int) -> dict[str, Any]:
    """Runs `streams` concurrent Generate calls: total tokens, wall time, each call's decode tok/s."""
    from smolrt.v1 import smolrt_pb2 as pb
    from smolrt.v1 import smolrt_pb2_grpc as rpc

    # The single-threaded stream reader polls the call in the reading thread instead of handing
    # each message over from a channel thread: one thread wake per message instead of two.
    options = [(grpc.experimental.ChannelOptions.SingleThreadedUnaryStream, 1)]
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=options)
    stub = rpc.InferenceStub(channel)

    def one_stream(i: int, max_tokens: int = tokens) -> tuple[int, float, float]:
        req = pb.GenerateRequest(
            prompt=PROMPT,
            sampling=pb.SamplingParameters(temperature=0.8, seed=i),
            stopping=pb.StoppingParameters(max_tokens=max_tokens, ignore_eos=True),
        )
        t0 = time.perf_counter()
        first = last = None
        for ev in stub.Generate(req):
            if first is None and ev.WhichOneof("kind") == "delta":
                first = time.perf_counter() - t0
            last = ev
        assert first is not None and last is not None and last.WhichOneof("kind") == "finished"
        return last.finished.usage.completion_tokens, last.finished.timings.decode_tokens_per_s, first

    one_stream(0, 2)  # connect
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(streams) as pool:
        results = list(pool.map(one_stream, range(streams)))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    channel.close()
    return {
        "tokens": sum(r[0] for r in results),
        "wall": wall,
        "decode": [r[1] for r in results],
        "first_ms": sorted(r[2] * 1000 for r in results),
        "cpu": cpu,
    }


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds so far of each of this process's threads, by name (Python threads by their
    `threading` name, native ones by the name the OS has). From the scheduler's nanosecond
    counter (`schedstat`) where the kernel keeps one: `stat`'s 10 ms ticks are 0.1 ms per token
    over a 96-token stream, as coarse as what they measure."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        task = Path(f"/proc/self/task/{tid}")
        try:
            stat = (task / "stat").read_text()
            schedstat = (task / "schedstat").read_text() if (task / "schedstat").exists() else ""
        except OSError:
            continue  # the thread ended
        name = names.get(int(tid), stat[stat.index("(") + 1 : stat.rindex(")")])
        if schedstat:
            cpu = int(schedstat.split()[0]) / 1e9
        else:
            fields = stat[stat.rindex(")") + 2 :].split()
            cpu = (int(fields[11]) + int(fields[12])) / tick
        out[name] = out.get(name, 0.0) + cpu
    return out


def run_client(port: int, streams: int, tokens: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--client", str(port), "--streams", str(streams), "--tokens", str(tokens)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="GGUF file (default: the pulled default model)")
    ap.add_argument("--tokens", type=int, default=64, help="tokens generated per stream")
    ap.add_argument("--streams", default="1,4,8,16")
    ap.add_argument("--repeats", type=int, default=2, help="best of N for each row")
    ap.add_argument("--client", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client is not None:
        print(json.dumps(client(args.client, int(args.streams), args.tokens)))
        return 0

    from smolrt import Engine, Finished
    from smolrt.server import Settings, start

    engine = Engine.load(args.model)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="server-loop", daemon=True)
    thread.start()
    running = asyncio.run_coroutine_threadsafe(start(Settings(grpc_port=0, http_port=-1), engine), loop).result()
    counts = [int(n) for n in args.streams.split(",")]
    print(f"model {Path(engine.path).name}, {args.tokens} tokens per stream, best of {args.repeats}", file=sys.stderr)

    # Warm-up: first touch of the weights, thread pools, the server's paths.
    run_client(running.port, 1, 8)

    def in_process() -> float:
        gen = engine.generate(PROMPT, max_tokens=args.tokens, ignore_eos=True, temperature=0.8, seed=0)
        *_, last = list(gen)
        assert isinstance(last, Finished)
        return last.timings.decode_tokens_per_s

    rows = []
    single_grpc = single_lib = 0.0
    cpu_lines: dict[int, str] = {}
    for n in counts:
        best = 0.0
        first_ms: list[float] = []
        for _ in range(args.repeats):
            before = thread_cpu_s()
            result = run_client(running.port, n, args.tokens)
            if n not in cpu_lines:
                # Where a token's CPU goes: on a box whose cores all compute, every millisecond
                # the serving threads and the client take comes out of the forward pass.
                after = thread_cpu_s()
                per_token = {k: (v - before.get(k, 0.0)) * 1000 / result["tokens"] for k, v in after.items()}
                busy = ", ".join(f"{k} {v:.2f}" for k, v in sorted(per_token.items(), key=lambda kv: -kv[1])
                                 if v >= 0.005)
                cpu_lines[n] = f"server threads: {busy}; client process: {result['cpu'] * 1000 / result['tokens']:.2f}"
            if result["tokens"] / result["wall"] > best:
                best, first_ms = result["tokens"] / result["wall"], result["first_ms"]
            if n == 1:
                # interleaved with the in-process run, so both see the same machine
                single_grpc = max(single_grpc, result["decode"][0])
                single_lib = max(single_lib, in_process())
        rows.append((n, best, first_ms[len(first_ms) // 2], first_ms[-1]))
    if 1 not in counts:
        for _ in range(args.repeats):
            single_grpc = max(single_grpc, run_client(running.port, 1, args.tokens)["decode"][0])
            single_lib = max(single_lib, in_process())

    header = f"{'streams':>8} {'aggregate tok/s':>16} {'per stream':>11} {'vs 1 stream':>12}"
    print(f"{header} {'first token ms, median / last':>30}")
    base = rows[0][1] if rows else 1.0
    for n, agg, first_median, first_last in rows:
        firsts = f"{first_median:.0f} / {first_last:.0f}"
        print(f"{n:>8} {agg:>16.1f} {agg / n:>11.1f} {agg / base:>11.2f}x {firsts:>30}")
    print()
    print(
        f"single-stream decode tok/s: gRPC {single_grpc:.1f}, in-process {single_lib:.1f}, "
        f"ratio {single_grpc / single_lib:.3f}"
    )
    for n, line in cpu_lines.items():
        print(f"CPU ms per token, {n} gRPC stream{'s' if n > 1 else ''}: {line}")

    asyncio.run_coroutine_threadsafe(running.stop(0), loop).result()
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
