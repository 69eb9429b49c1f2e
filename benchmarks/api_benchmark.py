"""Benchmark of the HTTP API (`hades-perception serve`) against the pipeline alone, in one
run on one machine. Results are written as JSON; this is not a test.

    source scripts/env.sh
    python benchmarks/api_benchmark.py --out benchmarks/results/api_cpu_2core.json

1. pipeline alone: the same bundle in this process, on the same full-size 4202x3006
   synthetic frames: PNG decode + pipeline per frame (what the server does per request,
   less HTTP), and the pipeline alone.
2. the API: a real server on 127.0.0.1 (default providers and threads, rate limit off);
   POST /v1/predict with the frame's PNG, at concurrency 1, 2 and 4 (clients in threads,
   http.client): requests/s, latency p50/p99, and the overhead against step 1. Requests
   run one at a time on the served pipeline (docs/api.md), so more clients queue: the
   throughput stays, latency grows with the queue.
3. memory: the server's RSS every 50 requests over --memory-requests requests of a
   small plate (1050x752, so that 500 requests take minutes, not a quarter of an hour:
   a leak per request shows whatever the frame size).
The host's steal time is recorded per phase (node_benchmark.py's helpers).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from node_benchmark import cpu_times, make_frames, percentiles, rss_mb, steal_share

ROOT = Path(__file__).resolve().parents[1]
SMALL_PLATE = ROOT / "ros2_ws" / "src" / "hades_perception_ros" / "test" / "data" / "plates" / "images"


def png(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def decode(data: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert bgr is not None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def pipeline_alone(model: Path, pngs: list[bytes], rounds: int) -> dict[str, Any]:
    from hades_perception.inference.pipeline import Pipeline

    pipe = Pipeline.from_bundle(model)
    pipe(decode(pngs[0]))
    since, with_decode, alone = cpu_times(), [], []
    for i in range(rounds):
        t0 = time.perf_counter()
        rgb = decode(pngs[i % len(pngs)])
        t1 = time.perf_counter()
        pipe(rgb)
        t2 = time.perf_counter()
        with_decode.append((t2 - t0) * 1e3)
        alone.append((t2 - t1) * 1e3)
    return {
        "decode_and_pipeline_ms": percentiles(with_decode),
        "pipeline_ms": percentiles(alone),
        "per_s": 1000.0 / float(np.median(with_decode)),
        "steal": steal_share(since),
    }


class Client:
    def __init__(self, port: int, key: str) -> None:
        self.port, self.key = port, key

    def predict(self, data: bytes) -> float:
        boundary = uuid.uuid4().hex
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="p.png"\r\n'
                "Content-Type: image/png\r\n\r\n"
            ).encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        t0 = time.perf_counter()
        try:
            conn.request(
                "POST",
                "/v1/predict",
                body=body,
                headers={
                    "Authorization": f"Bearer {self.key}",
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                },
            )
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                raise RuntimeError(f"predict answered {r.status}")
        finally:
            conn.close()
        return (time.perf_counter() - t0) * 1e3


def api_at(client: Client, pngs: list[bytes], concurrency: int, requests: int) -> dict[str, Any]:
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            ms = client.predict(pngs[i % len(pngs)])
            with lock:
                latencies.append(ms)

    since, t0 = cpu_times(), time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {
        "concurrency": concurrency,
        "requests": requests,
        "per_s": requests / wall,
        "latency_ms": percentiles(latencies),
        "steal": steal_share(since),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "hades-seedlings"))
    ap.add_argument("--frames", type=int, default=2, help="distinct full-size frames")
    ap.add_argument("--requests", type=int, default=6, help="requests (and pipeline-alone rounds) per phase")
    ap.add_argument("--concurrency", default="1,2,4")
    ap.add_argument("--memory-requests", type=int, default=500)
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "api_cpu.json"))
    a = ap.parse_args()

    frames = make_frames(a.frames, seed=77)
    pngs = [png(f) for f in frames]
    result: dict[str, Any] = {
        "frame": {"width": frames[0].shape[1], "height": frames[0].shape[0], "png_mb": len(pngs[0]) / 1e6},
        "cpus": os.cpu_count(),
    }
    print(f"pipeline alone on {a.requests} full frames ...", flush=True)
    result["pipeline_alone"] = alone = pipeline_alone(Path(a.model), pngs, a.requests)
    print(json.dumps(alone["decode_and_pipeline_ms"]), flush=True)

    from hades_perception.api.keys import KeyFile

    work = Path(tempfile.mkdtemp(prefix="api-bench-"))
    keys = KeyFile(work / "keys.json")
    key = keys.create("bench", ("predict",))
    cmd = [str(Path(sys.executable).parent / "hades-perception"), "serve", "--bundle", a.model, "--port", str(a.port)]
    cmd += ["--keys", str(keys.path), "--rate-limit", "off", "--work-dir", str(work / "api"), "--live-namespace", ""]
    server = subprocess.Popen(cmd, stdout=(work / "server.log").open("wb"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=2)
                conn.request("GET", "/v2/health/ready")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"the server did not start: {(work / 'server.log').read_text()[-2000:]}")
            time.sleep(0.3)
        client = Client(a.port, key)
        client.predict(pngs[0])  # warm-up
        result["api"] = []
        for c in (int(x) for x in a.concurrency.split(",")):
            print(f"API at concurrency {c} ...", flush=True)
            phase = api_at(client, pngs, c, max(a.requests, 2 * c))
            phase["overhead_vs_pipeline_alone"] = alone["per_s"] / phase["per_s"] - 1.0
            result["api"].append(phase)
            print(json.dumps({k: phase[k] for k in ("per_s", "overhead_vs_pipeline_alone")}), flush=True)

        small = sorted(SMALL_PLATE.glob("*.png"))[0].read_bytes()
        print(f"memory over {a.memory_requests} requests of a small plate ...", flush=True)
        rss = [(0, rss_mb(server.pid))]
        for i in range(1, a.memory_requests + 1):
            client.predict(small)
            if i % 50 == 0:
                rss.append((i, rss_mb(server.pid)))
        after_warmup = [mb for n, mb in rss if n >= 100]
        result["memory"] = {
            "requests": a.memory_requests,
            "rss_mb": rss,
            "growth_mb_after_100": after_warmup[-1] - after_warmup[0] if len(after_warmup) > 1 else None,
        }
        print(json.dumps(result["memory"]), flush=True)
    finally:
        server.terminate()
        server.wait(30)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
