"""`make bench`: latency, upstream calls, CPU, import time and zip size.

Runs the relay in its own process over HTTP against the emulators (in this
process) and prints, per provider: observe latency for N = 1, 10, 50, 100
observables with 100 ms injected per upstream call, upstream calls per
request, and warm overhead with no latency; then the relay's own CPU per
warm observe (N = 50), cold `import app` against cold `import flask`, and
the Lambda zip size. Targets from the issues are checked and marked.
"""
import os
import shutil
import statistics
import subprocess
import sys
import time

import requests

from api.tools import cli
from tests import bench_auth, bench_container, bench_misp, bench_ops
from tests.ctim_check import ROOT
from tests.emulators import base
from tests.relay_server import cpu_seconds, spawn

LATENCY = 0.1
SIZES = (1, 10, 50, 100)
# (max upstream calls per observe, max observe time at N=50 in units of LATENCY)
TARGETS = {"misp": (2, 2.0), "pulsedive": (None, 3.0), "otx": (None, 3.0),
           "cyberprotect": (None, 3.0)}
RESULTS = []


def mark(ok):
    return "ok  " if ok else "MISS"


def target(label, ok, detail):
    RESULTS.append(ok)
    print(f"  [{mark(ok)}] {label}: {detail}")


def observe(relay, name, headers, observables):
    started = time.perf_counter()
    response = requests.post(f"{relay}/{name}/observe/observables", json=observables,
                             headers=headers, timeout=60)
    elapsed = time.perf_counter() - started
    body = response.json()
    return elapsed, body


def bench_provider(relay, name, emulator, secret, process):
    headers = {"Authorization": f"Bearer {cli.mint(emulator.module.CLAIMS, secret)}"}
    print(f"\n{name}: observe with {LATENCY * 1000:.0f} ms per upstream call")
    observe(relay, name, headers, emulator.module.observables(1))  # warm up
    at_50 = None
    max_calls, max_factor = TARGETS[name]
    for n in SIZES:
        observables = emulator.module.observables(n)
        times = []
        for _ in range(3):
            emulator.reset()
            emulator.latency = LATENCY
            elapsed, body = observe(relay, name, headers, observables)
            times.append(elapsed)
        calls = emulator.calls
        verdicts = body.get("data", {}).get("verdicts", {}).get("count", 0)
        errors = len(body.get("errors", []))
        median = statistics.median(times)
        if n == 50:
            at_50 = (median, calls)
        print(f"  N={n:4d}  {median * 1000:7.1f} ms  upstream calls={calls:4d} "
              f"({calls / n:.2f}/observable)  verdicts={verdicts} errors={errors}")
    median, calls = at_50
    target(f"observe at N=50 <= {max_factor:g} x latency", median <= max_factor * LATENCY,
           f"{median * 1000:.0f} ms vs {max_factor * LATENCY * 1000:.0f} ms")
    if max_calls is not None:
        target(f"upstream calls per observe <= {max_calls}", calls <= max_calls,
               f"{calls} at N=50")
    emulator.reset()
    observables = emulator.module.observables(50)
    runs = 20
    warm = []
    cpu_before = cpu_seconds(process.pid)
    for _ in range(runs):
        warm.append(observe(relay, name, headers, observables)[0])
    cpu = (cpu_seconds(process.pid) - cpu_before) / runs
    print(f"  warm, 0 ms latency, N=50: median {statistics.median(warm) * 1000:.1f} ms, "
          f"relay CPU {cpu * 1000:.1f} ms per observe")
    return cpu


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


def zip_size():
    """(bytes, seconds) of `zappa package dev` from the lean virtualenv."""
    from tests import lambda_env

    home = lambda_env.tmpfs_home("relay-bench-")
    try:
        seconds = lambda_env.package(home, home / "relay.zip")
        return (home / "relay.zip").stat().st_size, seconds
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main():
    secret = cli.generate_secret()
    emulators, env = base.start_all()
    env.update({"SECRET_KEY": secret, "AWS_EC2_METADATA_DISABLED": "true"})
    process, relay = spawn(env)
    cpu = {}
    try:
        for name, emulator in emulators.items():
            cpu[name] = bench_provider(relay, name, emulator, secret, process)
    finally:
        process.terminate()
        process.wait(5)
        for emulator in emulators.values():
            emulator.stop()
    print("\nrelay process")
    if "misp" in cpu:
        target("MISP relay CPU per warm observe at N=50 <= 40 ms", cpu["misp"] <= 0.040,
               f"{cpu['misp'] * 1000:.1f} ms")
    bench_ops.run(target)
    flask_time = import_time("flask")
    app_time = import_time("app")
    target("cold `import app` <= 1.5 x cold `import flask`", app_time <= 1.5 * flask_time,
           f"{app_time * 1000:.0f} ms vs flask {flask_time * 1000:.0f} ms "
           f"(x{app_time / flask_time:.2f})")
    size, seconds = zip_size()
    target("Lambda zip <= 8 MB", size <= 8 * 1024 * 1024,
           f"{size / 1024 / 1024:.2f} MiB (`zappa package dev` took {seconds:.1f} s)")
    bench_auth.run(target)
    bench_container.run(target)
    bench_misp.run(target)
    missed = RESULTS.count(False)
    print(f"\n{len(RESULTS) - missed} of {len(RESULTS)} targets met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
