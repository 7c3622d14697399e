"""The container's command under load: `make serve`'s gunicorn (the image's
config and defaults) on loopback, 20 concurrent clients sending MISP observes
of N = 10 observables, 100 ms injected per upstream call.

The MISP emulator runs in a process of its own, so the clients (here) and the
emulator do not share one interpreter lock. Prints observes per second, p50
and p95 latency, and the server's CPU per observe; every answer must be
complete (no error, one verdict per observable).
"""
import os
import runpy
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from api.tools import cli
from tests import emulators
from tests.ctim_check import ROOT
from tests.relay_server import cpu_seconds
from tests.test_container import Server

CLIENTS = 20
N = 10
LATENCY = 0.1
SECONDS = 10.0


def _client(url, headers, observables, stop, latencies, failures):
    with requests.Session() as session:
        while not stop.is_set():
            started = time.perf_counter()
            response = session.post(url, json=observables, headers=headers, timeout=60)
            elapsed = time.perf_counter() - started
            body = response.json()
            complete = (response.status_code == 200 and "errors" not in body
                        and body["data"]["verdicts"]["count"] == len(observables))
            (latencies if complete else failures).append(elapsed)


def load(url, headers, observables, clients=CLIENTS, seconds=SECONDS):
    """(observes per second, [latencies], failures) of `clients` over `seconds`."""
    stop = threading.Event()
    latencies, failures = [], []
    with ThreadPoolExecutor(clients) as pool:
        started = time.perf_counter()
        jobs = [pool.submit(_client, url, headers, observables, stop, latencies, failures)
                for _ in range(clients)]
        time.sleep(seconds)
        stop.set()
        for job in jobs:
            job.result()
        elapsed = time.perf_counter() - started
    return (len(latencies) + len(failures)) / elapsed, latencies, len(failures)


def _emulator_process():
    """The MISP emulator with LATENCY, in a child process; (process, base URL)."""
    process = subprocess.Popen([sys.executable, "-m", "tests.bench_container", "emulator"],
                               cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    return process, process.stdout.readline().strip()


def run(target=None):
    secret = cli.generate_secret()
    misp = emulators.load("misp")
    headers = {"Authorization": f"Bearer {cli.mint(misp.CLAIMS, secret)}"}
    observables = misp.observables(N)
    emulator, emulator_url = _emulator_process()
    with tempfile.TemporaryDirectory() as folder:
        server = Server(folder, SECRET_KEY=secret, API_URL=emulator_url)
        url = f"{server.url}/misp/observe/observables"
        try:
            load(url, headers, observables, seconds=1)   # warm every worker
            _, alone, _ = load(url, headers, observables, clients=1, seconds=3)
            pids = server.workers()
            before = sum(cpu_seconds(pid) for pid in pids)
            rate, latencies, failures = load(url, headers, observables)
            cpu = (sum(cpu_seconds(pid) for pid in pids) - before) / (len(latencies) + failures)
            threads = runpy.run_path(str(ROOT / "gunicorn.conf.py"))["threads"]
        finally:
            server.stop()
            emulator.stdin.close()
            emulator.wait(10)
    quantiles = statistics.quantiles(latencies, n=20)
    print(f"\ncontainer command (`make serve`: gunicorn gthread, {len(pids)} workers x "
          f"{threads} threads), MISP observe, N={N}, {LATENCY * 1000:.0f} ms per upstream call")
    print(f"  one client: p50 {statistics.median(alone) * 1000:.0f} ms")
    print(f"  {CLIENTS} concurrent clients for {SECONDS:g} s: {rate:.1f} observes/s, "
          f"p50 {statistics.median(latencies) * 1000:.0f} ms, "
          f"p95 {quantiles[18] * 1000:.0f} ms, {len(latencies)} complete, {failures} failed; "
          f"server CPU {cpu * 1000:.1f} ms per observe (load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    if target is not None:
        target("container: every observe under load complete", failures == 0,
               f"{failures} of {len(latencies) + failures} failed")
    return rate, latencies, failures


def _serve_emulator():
    from tests.emulators import base

    emulator = base.start("misp")
    emulator.latency = LATENCY
    print(emulator.url, flush=True)
    sys.stdin.read()    # until the bench closes our stdin
    emulator.stop()


if __name__ == "__main__":
    _serve_emulator() if sys.argv[1:] == ["emulator"] else run()
