"""Relay CPU per warm observe at N = 50 with request logs and EMF metrics on
(RELAY_LOG_LEVEL=INFO, RELAY_METRICS=true) against off (WARNING, false).

Two relay processes, one per setting, both against the MISP emulator with no
latency; batches alternate between them (in alternating order) so that the
machine's load hits both alike, and the median batch is quoted. That clock
ticks in 10 ms and the machine's load moves it by a few ms, so the target is
checked on a finer figure: the same observe served in this process, logs and
metrics switched on and off request by request, timed with the thread's CPU
clock (plus the report alone).
"""
import contextlib
import io
import os
import statistics
import time

import requests

from api.tools import cli
from tests.emulators import base
from tests.relay_server import cpu_seconds, spawn

N = 50
BATCHES = 15
PER_BATCH = 20
SETTINGS = {"off": {"RELAY_LOG_LEVEL": "WARNING", "RELAY_METRICS": "false"},
            "on": {"RELAY_LOG_LEVEL": "INFO", "RELAY_METRICS": "true"}}


def _batch(process, url, headers, observables):
    before = cpu_seconds(process.pid)
    for _ in range(PER_BATCH):
        requests.post(url, json=observables, headers=headers, timeout=60).raise_for_status()
    return (cpu_seconds(process.pid) - before) / PER_BATCH


def cpu_on_off():
    """{"on": seconds, "off": seconds}: median relay CPU per warm observe."""
    emulator = base.start("misp")
    secret = cli.generate_secret()
    env = {"SECRET_KEY": secret, emulator.module.ENV_VAR: emulator.url,
           "AWS_EC2_METADATA_DISABLED": "true"}
    headers = {"Authorization": f"Bearer {cli.mint(emulator.module.CLAIMS, secret)}"}
    observables = emulator.module.observables(N)
    relays = {name: spawn(dict(env, **extra)) for name, extra in SETTINGS.items()}
    samples = {name: [] for name in relays}
    try:
        for name, (process, relay) in relays.items():  # warm up
            _batch(process, f"{relay}/misp/observe/observables", headers, observables)
        for index in range(BATCHES):
            order = list(relays.items())
            for name, (process, relay) in order[::-1] if index % 2 else order:
                samples[name].append(_batch(
                    process, f"{relay}/misp/observe/observables", headers, observables))
    finally:
        for process, _ in relays.values():
            process.terminate()
            process.wait(5)
        emulator.stop()
    return {name: statistics.median(values) for name, values in samples.items()}


def in_process_cpu(runs=150):
    """{"on", "off", "report"}: median thread CPU seconds of one observe served
    in this process, logs and metrics switched on and off request by request
    (the relay reads its settings per request), and of the report alone."""
    from api import create_app, telemetry

    emulator = base.start("misp")
    secret = cli.generate_secret()
    saved = dict(os.environ)
    os.environ.update({"SECRET_KEY": secret, emulator.module.ENV_VAR: emulator.url})
    report, samples = telemetry._report, {"on": [], "off": [], "report": []}

    def timed(*args):
        started = time.thread_time()
        report(*args)
        samples["report"].append(time.thread_time() - started)

    telemetry._report = timed
    try:
        client = create_app().test_client()
        headers = {"Authorization": f"Bearer {cli.mint(emulator.module.CLAIMS, secret)}"}
        observables = emulator.module.observables(N)
        with contextlib.redirect_stdout(io.StringIO()):
            for index in range(runs * 2):
                name = "on" if index % 2 else "off"
                os.environ.update(SETTINGS[name])
                started = time.thread_time()
                client.post("/misp/observe/observables", json=observables, headers=headers)
                samples[name].append(time.thread_time() - started)
    finally:
        telemetry._report = report
        os.environ.clear()
        os.environ.update(saved)
        emulator.stop()
    samples["report"] = samples["report"][1::2]  # the "on" requests
    return {name: statistics.median(values) for name, values in samples.items()}


def run(target):
    """Print the figures; `target(label, ok, detail)` marks the 2 ms goal."""
    cpu = cpu_on_off()
    paired = in_process_cpu()
    print(f"\nlogs and metrics on/off, MISP observe N={N}, relay CPU per warm observe")
    print(f"  relay process over HTTP (median of {BATCHES} x {PER_BATCH}, 10 ms clock): "
          f"off {cpu['off'] * 1000:.1f} ms, on {cpu['on'] * 1000:.1f} ms")
    print(f"  in process, alternating (median thread CPU): off {paired['off'] * 1000:.2f} ms, "
          f"on {paired['on'] * 1000:.2f} ms; the report itself {paired['report'] * 1e6:.0f} us")
    target("logs + EMF metrics add <= 2 ms relay CPU per observe at N=50",
           paired["on"] - paired["off"] <= 0.002,
           f"{(paired['on'] - paired['off']) * 1000:+.2f} ms in process, "
           f"{(cpu['on'] - cpu['off']) * 1000:+.1f} ms over HTTP")
    return cpu, paired
