"""Relay CPU per warm observe at N = 50 with an RS256 (Cisco XDR) token against
an HS256 (`jwt dev`) token.

One relay process against the MISP emulator with no latency, XDR's JWKS over
TLS on loopback (tests/xdr.py); batches alternate between the two tokens so
that the machine's load hits both alike, and the median batch is quoted.
"""
import statistics
import tempfile
from pathlib import Path

import requests

from api.tools import cli
from tests.emulators import base
from tests.relay_server import cpu_seconds, spawn
from tests.xdr import TestCA, Xdr

N = 50
BATCHES = 9
PER_BATCH = 20
TARGET_MS = 5.0


def _batch(process, url, headers, observables):
    before = cpu_seconds(process.pid)
    for _ in range(PER_BATCH):
        body = requests.post(url, json=observables, headers=headers, timeout=60).json()
        assert "errors" not in body, body["errors"]
    return (cpu_seconds(process.pid) - before) / PER_BATCH


def cpu_rs256_hs256():
    """({"HS256": seconds, "RS256": seconds} median CPU per warm observe, JWKS fetches)."""
    emulator = base.start("misp")
    with tempfile.TemporaryDirectory() as folder:
        xdr = Xdr(TestCA(Path(folder)))
        secret = cli.generate_secret()
        process, relay = spawn({
            "SECRET_KEY": secret, emulator.module.ENV_VAR: emulator.url,
            "RELAY_JWKS_HOSTS": xdr.host, "REQUESTS_CA_BUNDLE": str(Path(folder) / "ca.pem"),
            "AWS_EC2_METADATA_DISABLED": "true"})
        url = f"{relay}/misp/observe/observables"
        tokens = {"HS256": cli.mint({**emulator.module.CLAIMS, "provider": "misp"}, secret),
                  "RS256": xdr.token({**emulator.module.CLAIMS, "aud": f"{relay}/misp"},
                                     lifetime=3600)}
        headers = {alg: {"Authorization": f"Bearer {token}"} for alg, token in tokens.items()}
        observables = emulator.module.observables(N)
        samples = {alg: [] for alg in tokens}
        try:
            for alg in tokens:  # warm up (the RS256 one fetches the JWKS)
                _batch(process, url, headers[alg], observables)
            for _ in range(BATCHES):
                for alg in tokens:
                    samples[alg].append(_batch(process, url, headers[alg], observables))
        finally:
            process.terminate()
            process.wait(5)
            xdr.stop()
            emulator.stop()
    return {alg: statistics.median(values) for alg, values in samples.items()}, xdr.fetches


def run(target):
    """Print the figures; `target(label, ok, detail)` marks the 5 ms goal."""
    cpu, fetches = cpu_rs256_hs256()
    extra = (cpu["RS256"] - cpu["HS256"]) * 1000
    print(f"\nauthentication (MISP, N={N}, relay CPU per warm observe, "
          f"median of {BATCHES} x {PER_BATCH})")
    print(f"  HS256: {cpu['HS256'] * 1000:.1f} ms   RS256: {cpu['RS256'] * 1000:.1f} ms   "
          f"JWKS fetches: {fetches} in {(BATCHES + 1) * PER_BATCH} RS256 requests")
    target(f"RS256 CPU per warm observe <= HS256 + {TARGET_MS:g} ms", extra <= TARGET_MS,
           f"{extra:+.1f} ms")
