"""Benchmark: how fast a rollback reaches running clients, and what the tiered service costs per request.

1. Rollback convergence: N worker threads, each with its own `CachedFlagReader` on the SSM store
   served by moto's server (real boto3 over HTTP on 127.0.0.1), route requests while the flag says
   huggingface; we flip it to OpenAI with `rollback_to_openai` and time until every worker routes
   to OpenAI. The bound to compare with is the TTL.
2. Service overhead: the same local OpenAI-compatible server (a rendered Space app, echo engine) is
   called through the bare `openai` client and through `TieredLLMService` (flag read, routing,
   breaker, usage log to a JSON-lines file), interleaved in one run; we report both medians and
   their ratio.

Run: `python -m bench.bench_flags [--workers 16] [--ttl 1.0] [--requests 200]`. `main()` returns the
rows so an aggregate `invoke bench` can collect them.
"""

from __future__ import annotations

import argparse
import logging
import random
import secrets
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import boto3
import openai
from moto.server import ThreadedMotoServer

from bench.report import Row, print_rows, row
from infra.flags import CachedFlagReader, FlagChange, SSMFlagStore, apply_change, decide_route, rollback_to_openai
from infra.local_space import serve_space_locally
from infra.render import render_space
from infra.service import OpenAIService, SpaceService, TieredLLMService
from infra.spec import load_declaration
from infra.usage_log import UsageLogger, json_lines_handler

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "config" / "spaces.yaml"
MESSAGES = [{"role": "user", "content": "summarise the quarterly report in one line"}]



def _ssm_store(endpoint: str, name: str | None = None) -> SSMFlagStore:
    """A store with its own boto3 client (as a separate process would have), fake credentials."""
    client = boto3.client("ssm", region_name="eu-west-1", endpoint_url=endpoint,
                          aws_access_key_id="bench", aws_secret_access_key="bench")
    return SSMFlagStore(name or f"/triple-llm/bench-{uuid.uuid4().hex[:8]}/flags", client=client)


def bench_rollback_convergence(workers: int = 16, ttl: float = 1.0) -> list[Row]:
    """Time from a confirmed rollback write until all `workers` cached readers route to OpenAI."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        writer = _ssm_store(endpoint)
        apply_change(writer, FlagChange(provider="huggingface"), reason="bench rollout", actor="bench")
        seen_hf = threading.Barrier(workers + 1)
        switched_at: list[float] = [0.0] * workers
        stop = threading.Event()

        def worker(index: int) -> None:
            # Each worker is its own client process in miniature: own boto3 client, own cache.
            reader = CachedFlagReader(_ssm_store(endpoint, writer.parameter_name), ttl=ttl)
            time.sleep(random.uniform(0, ttl))  # clients started at different moments: refreshes spread
            while decide_route(reader.get(), "base", "warm").provider != "huggingface":
                time.sleep(0.01)
            seen_hf.wait()
            while not stop.is_set():
                if decide_route(reader.get(), "base", uuid.uuid4().hex).provider == "openai":
                    switched_at[index] = time.monotonic()
                    return
                time.sleep(0.005)

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(workers)]
        for thread in threads:
            thread.start()
        seen_hf.wait(timeout=30)
        started = time.monotonic()
        rollback_to_openai(writer, reason="bench rollback", actor="bench")
        confirmed = time.monotonic()
        for thread in threads:
            thread.join(timeout=ttl * 3 + 10)
        stop.set()
        lags = sorted(at - confirmed for at in switched_at if at)
        if len(lags) != workers:
            raise RuntimeError(f"only {len(lags)} of {workers} workers followed the rollback")
        return [
            row("rollback", "write+confirm", (confirmed - started) * 1000, "ms", "one SSM write, read back"),
            row("rollback", "convergence p50", lags[len(lags) // 2], "s", f"{workers} workers"),
            row("rollback", "convergence max", lags[-1], "s", f"bound: TTL {ttl:g}s (+ one read)"),
            row("rollback", "ttl", ttl, "s", "CachedFlagReader time-to-live"),
        ]
    finally:
        server.stop()


def bench_service_overhead(requests: int = 200, config: Path = DEFAULT_CONFIG) -> list[Row]:
    """Median latency: bare `openai` client vs `TieredLLMService`, same local server, interleaved."""
    decl = load_declaration(config)
    key = secrets.token_urlsafe(24)
    files = render_space(decl, "staging", "base")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    with serve_space_locally(files, {"SPACE_API_KEY": key, "LLM_ENGINE": "echo"}) as url, \
            tempfile.TemporaryDirectory() as tmp:
        host, port = server.get_host_and_port()
        store = _ssm_store(f"http://{host}:{port}")
        apply_change(store, FlagChange(provider="huggingface"), reason="bench", actor="bench")
        logger = logging.getLogger(f"bench.usage.{uuid.uuid4().hex[:6]}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        handler = json_lines_handler(Path(tmp) / "usage.jsonl")
        logger.addHandler(handler)
        try:
            direct = openai.OpenAI(api_key=key, base_url=url + "/v1", max_retries=0, timeout=10)
            service = TieredLLMService(
                openai=OpenAIService(api_key=key, base_url=url + "/v1", model="base", max_retries=0),
                spaces={"base": SpaceService(url, key, tier="base")},
                flags=CachedFlagReader(store, ttl=3.0),
                usage=UsageLogger(logger),
            )

            def call_direct() -> None:
                direct.chat.completions.create(model="base", messages=MESSAGES)

            def call_service() -> None:
                result = service.complete(MESSAGES, tier="base")
                assert result.provider == "huggingface" and not result.fallback

            for _ in range(20):  # warm connections and caches on both paths
                call_direct()
                call_service()
            times: dict[str, list[float]] = {"direct": [], "service": []}
            for i in range(requests):
                order = [("direct", call_direct), ("service", call_service)]
                for name, call in order if i % 2 == 0 else reversed(order):
                    began = time.perf_counter()
                    call()
                    times[name].append((time.perf_counter() - began) * 1000)
        finally:
            logger.removeHandler(handler)
            handler.close()
            server.stop()
    d, s = statistics.median(times["direct"]), statistics.median(times["service"])
    return [
        row("service", "openai client direct p50", d, "ms", f"{requests} requests, local echo Space"),
        row("service", "TieredLLMService p50", s, "ms", "flag read + route + breaker + usage log"),
        row("service", "overhead p50", s - d, "ms", "service minus direct"),
        row("service", "overhead ratio", s / d, "x", "service / direct, same run, interleaved"),
    ]


def main(argv: Sequence[str] | None = None) -> list[Row]:
    """Run both benchmarks, print the table, and return the rows."""
    parser = argparse.ArgumentParser(prog="python -m bench.bench_flags", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=16, help="client workers reading the flag")
    parser.add_argument("--ttl", type=float, default=1.0, help="cached reader time-to-live, seconds")
    parser.add_argument("--requests", type=int, default=200, help="requests per path for the overhead")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="declaration to render the app from")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request otherwise
    rows = bench_rollback_convergence(args.workers, args.ttl) + bench_service_overhead(args.requests, args.config)
    print_rows(rows, title="flags and service benchmark")
    return rows


if __name__ == "__main__":
    main()
