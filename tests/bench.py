"""`make bench`: the relay's CPU, latency, cold start and package size.

The relay runs in its own process over HTTP (tests.relay_server) against
the emulators in this process; its CPU is read from /proc for that process
alone. Per provider: relay CPU per warm observe at N = 1, 10, 50, 100 with
no injected latency (median of 10 samples), CPU per upstream call,
deliberate CPU at N = 50, and observe time over latency (t/L) with upstream
calls at N = 1, 10, 50 with 100 ms per upstream call. Then cold `import
app` against `import flask`, and the Lambda zip: its size and the first
`handler.lambda_handler` invocation. Targets (issue 12) are marked ✓ / ✗.

Topics add figures from their own `tests/bench_<topic>.py`, called from one
line in `main()`: `run(report, harness)` to use the running relay and
emulators, or `run(report.target)` with processes of their own.
"""
import os
import shutil
import statistics
import subprocess
import sys
import time

import requests

from api.tools import cli
from tests import bench_auth, bench_cache, bench_container, bench_misp, bench_ops
from tests.ctim_check import ROOT
from tests.emulators import base
from tests.relay_server import cpu_seconds, spawn

LATENCY = 0.1
CPU_SIZES = (1, 10, 50, 100)
LATENCY_SIZES = (1, 10, 50)
SAMPLES = 10
# Observes per CPU sample: /proc counts CPU in 10 ms ticks, so a sample of a
# small observe spans several of them.
BATCH = {1: 20, 10: 5, 50: 2, 100: 1}
# Issue 12: relay CPU per warm observe at N=50 (ms), t/L at N=50.
CPU_TARGET_MS = {"misp": 15, "pulsedive": 40, "otx": 40, "cyberprotect": 40}
TL_TARGET = {"misp": 1.5, "pulsedive": 1.5, "cyberprotect": 1.5, "otx": 3.0}
IMPORT_TARGET = 1.0
ZIP_TARGET_MB = 8


class Report:
    """Printed figures and the targets met or missed."""

    def __init__(self):
        self.targets = []

    @staticmethod
    def section(title):
        print(f"\n{title}", flush=True)

    @staticmethod
    def line(text):
        print(f"  {text}", flush=True)

    def target(self, label, ok, detail):
        self.targets.append((label, ok, detail))
        print(f"  [{'✓' if ok else '✗'}] {label}: {detail}", flush=True)

    def finish(self):
        self.section("targets")
        for label, ok, detail in self.targets:
            self.line(f"{'✓' if ok else '✗'} {label}: {detail}")
        met = sum(ok for _, ok, _ in self.targets)
        print(f"\n{met} of {len(self.targets)} targets met")
        return 0


class Harness:
    """Every emulator in this process and the relay in its own process."""

    def __enter__(self):
        self.secret = cli.generate_secret()
        self.emulators, env = base.start_all()
        # RELAY_CACHE_TTL=0: these figures measure upstream work, not cache hits.
        env.update({"SECRET_KEY": self.secret, "AWS_EC2_METADATA_DISABLED": "true",
                    "RELAY_CACHE_TTL": "0"})
        self.env = env
        self.process, self.url = spawn(env)
        self.http = requests.Session()
        return self

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait(5)
        for emulator in self.emulators.values():
            emulator.stop()

    def headers(self, name):
        claims = self.emulators[name].module.CLAIMS
        return {"Authorization": f"Bearer {cli.mint(claims, self.secret)}"}

    def post(self, name, route, observables):
        """(seconds, JSON body) of one relay call."""
        started = time.perf_counter()
        response = self.http.post(f"{self.url}/{name}/{route}/observables", json=observables,
                                  headers=self.headers(name), timeout=60)
        return time.perf_counter() - started, response.json()

    def cpu(self):
        """The relay process's CPU seconds so far (user + system)."""
        return cpu_seconds(self.process.pid)


def relay_cpu(harness, name, route, n):
    """(median CPU seconds per call, upstream calls per call) at N=n, no latency."""
    emulator = harness.emulators[name]
    observables = emulator.module.observables(n)
    emulator.reset()
    samples = []
    for _ in range(SAMPLES):
        before = harness.cpu()
        for _ in range(BATCH[n]):
            harness.post(name, route, observables)
        samples.append((harness.cpu() - before) / BATCH[n])
    return statistics.median(samples), emulator.calls / (SAMPLES * BATCH[n])


def bench_provider(report, harness, name):
    emulator = harness.emulators[name]
    report.section(f"{name}")
    for _ in range(3):   # warm: pools, imports, caches of the process
        harness.post(name, "observe", emulator.module.observables(10))
    cpu = {n: relay_cpu(harness, name, "observe", n) for n in CPU_SIZES}
    report.line("relay CPU per warm observe, 0 ms latency (median of 10):")
    for n, (seconds, calls) in cpu.items():
        per_call = f"{seconds / calls * 1000:5.2f} ms per upstream call" if calls else ""
        report.line(f"  N={n:3d}  {seconds * 1000:6.1f} ms  upstream calls {calls:5.1f}  "
                    f"{per_call}")
    observe_50 = cpu[50][0]
    deliberate_50, _ = relay_cpu(harness, name, "deliberate", 50)
    report.line(f"relay CPU per warm deliberate at N=50: {deliberate_50 * 1000:.1f} ms")
    report.line(f"observe with {LATENCY * 1000:.0f} ms per upstream call (median of 3):")
    ratio_50 = None
    for n in LATENCY_SIZES:
        observables = emulator.module.observables(n)
        times = []
        emulator.reset()
        emulator.latency = LATENCY
        for _ in range(3):
            times.append(harness.post(name, "observe", observables)[0])
        calls = emulator.calls / 3
        ratio = statistics.median(times) / LATENCY
        ratio_50 = ratio
        report.line(f"  N={n:3d}  {statistics.median(times) * 1000:6.1f} ms  t/L {ratio:4.2f}  "
                    f"upstream calls {calls:5.1f}")
    emulator.reset()
    report.target(f"{name}: relay CPU per warm observe at N=50 <= {CPU_TARGET_MS[name]} ms",
                  observe_50 * 1000 <= CPU_TARGET_MS[name], f"{observe_50 * 1000:.1f} ms")
    report.target(f"{name}: deliberate CPU <= observe CPU at N=50",
                  deliberate_50 <= observe_50 * 1.05,
                  f"{deliberate_50 * 1000:.1f} ms vs {observe_50 * 1000:.1f} ms")
    report.target(f"{name}: t/L at N=50 <= {TL_TARGET[name]:g}",
                  ratio_50 <= TL_TARGET[name], f"{ratio_50:.2f}")


def import_time(module):
    code = (f"import time; t = time.perf_counter(); import {module}; "
            "print(time.perf_counter() - t)")
    runs = []
    for _ in range(7):
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                             capture_output=True, text=True,
                             env=dict(os.environ, PYTHONDONTWRITEBYTECODE="")).stdout
        runs.append(float(out))
    return min(runs)


def bench_cold_import(report, harness=None):
    report.section("cold start")
    flask_time = import_time("flask")
    app_time = import_time("app")
    report.target(f"cold `import app` <= {IMPORT_TARGET:g} x cold `import flask`",
                  app_time <= IMPORT_TARGET * flask_time,
                  f"{app_time * 1000:.0f} ms vs flask {flask_time * 1000:.0f} ms "
                  f"(x{app_time / flask_time:.2f}, min of 7)")


def bench_lambda(report, harness):
    """The Zappa zip: size, and its handler's first invocations (MISP, N=10)."""
    from tests import lambda_env

    report.section("Lambda package")
    home = lambda_env.tmpfs_home("relay-bench-")
    try:
        seconds = lambda_env.package(home, home / "relay.zip")
        size = (home / "relay.zip").stat().st_size
        task = lambda_env.unpack(home / "relay.zip", home / "task")
        layer = lambda_env.runtime_layer(home)
        misp = harness.emulators["misp"]
        misp.reset()
        event = lambda_env.rest_v1_event("/observe/observables", misp.module.observables(10),
                                         harness.headers("misp"))
        env = {"SECRET_KEY": harness.secret, misp.module.ENV_VAR: misp.url,
               "RELAY_CACHE_TTL": "0"}
        answer = lambda_env.invoke_handler(task, [event, event], env, layer)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    first, second = answer["seconds"]
    report.line(f"`zappa package dev`: {seconds:.1f} s")
    report.line(f"cold `import handler`: {answer['import_seconds'] * 1000:.0f} ms; first "
                f"`handler.lambda_handler` (MISP observe, N=10): {first * 1000:.0f} ms; "
                f"second: {second * 1000:.0f} ms")
    report.target(f"Lambda zip <= {ZIP_TARGET_MB} MB", size <= ZIP_TARGET_MB * 1024 * 1024,
                  f"{size / 1024 / 1024:.2f} MiB")


def main():
    report = Report()
    with Harness() as harness:
        for name in harness.emulators:
            bench_provider(report, harness, name)
        bench_lambda(report, harness)
        # Topics needing the running relay: one line each, `run(report, harness)`.
    bench_cold_import(report)
    # Topics with their own processes: one line each, e.g. `run(report.target)`.
    bench_auth.run(report.target)
    bench_ops.run(report.target)
    bench_container.run(report.target)
    bench_misp.run(report.target)
    bench_cache.run(report.target)
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())
