"""MISP figures for `make bench` (issues 10 and 11 item 5).

- MISP calls per observe and per deliberate at N = 1, 10, 50, 100 (and 600)
  observables, with every verdict setting on (warninglists marked, decay
  model, org lists, tags): at most 2 whatever N;
- relay CPU per warm observe at N = 50 with the default settings, as the
  generic bench measures it, to compare with the figure before issue 10;
- mapping cost, in process: 600 observables against 600 events (one value
  each) and against one event of 600 attributes — each value is looked up in
  an index built once, never searched for among all events.
"""
import statistics
import time

import requests

from api.providers.misp import mapping
from api.tools import cli
from tests.emulators import base
from tests.relay_server import cpu_seconds, spawn

SIZES = (1, 10, 50, 100, 600)
SETTINGS = {"MISP_IDS_ONLY": True, "MISP_LOOKBACK_DAYS": 3650,
            "MISP_EXCLUDED_ORGS": "Nobody", "MISP_TRUSTED_ORGS": "CIRCL Demo CERT",
            "MISP_MALICIOUS_TAGS": "botnet-c2", "MISP_DECAYING_MODEL": 1}
CPU_RUNS = 20


def _post(relay, route, token, observables):
    return requests.post(f"{relay}/misp/{route}/observables", json=observables,
                         headers={"Authorization": f"Bearer {token}"}, timeout=60).json()


def calls_and_cpu(target):
    emulator = base.start("misp")
    secret = cli.generate_secret()
    process, relay = spawn({"SECRET_KEY": secret, emulator.module.ENV_VAR: emulator.url,
                            "RELAY_MAX_OBSERVABLES": "1000",
                            # measure MISP's own work, not answer-cache hits
                            "RELAY_CACHE_TTL": "0",
                            "AWS_EC2_METADATA_DISABLED": "true"})
    try:
        token = cli.mint({**emulator.module.CLAIMS, **SETTINGS}, secret)
        worst = 0
        for n in SIZES:
            observables = emulator.module.observables(min(n, 200))
            observables += [{"type": "ip", "value": f"192.0.2.{i % 250}"}
                            for i in range(n - len(observables))]
            counts = []
            for route in ("observe", "deliberate"):
                emulator.reset()
                _post(relay, route, token, observables)
                counts.append(emulator.calls)
            worst = max(worst, *counts)
            print(f"  N={n:4d}  MISP calls: observe {counts[0]}, deliberate {counts[1]} "
                  "(every verdict setting on)")
        target("MISP calls per observe/deliberate <= 2 at every N", worst <= 2,
               f"at most {worst}")
        emulator.reset()
        plain = cli.mint(emulator.module.CLAIMS, secret)
        observables = emulator.module.observables(50)
        _post(relay, "observe", plain, observables)
        before = cpu_seconds(process.pid)
        for _ in range(CPU_RUNS):
            _post(relay, "observe", plain, observables)
        cpu = (cpu_seconds(process.pid) - before) / CPU_RUNS
        print(f"  relay CPU per warm MISP observe at N=50: {cpu * 1000:.1f} ms "
              "(before issue 10: 34.0-37.5 ms on the same machine)")
        return cpu
    finally:
        process.terminate()
        process.wait(5)
        emulator.stop()


def _events(count, attributes):
    return [{"Event": {
        "uuid": f"e-{e}", "id": str(e), "threat_level_id": str(1 + e % 4), "info": f"event {e}",
        "date": "2026-10-01", "timestamp": "1790000000",
        "Orgc": {"name": "CIRCL", "uuid": "u"}, "Tag": [{"name": "tlp:green"}],
        "Attribute": [{"value": f"10.{e % 250}.{a // 250}.{a % 250}", "type": "ip-dst",
                       "to_ids": True, "timestamp": "1790000000",
                       "Sighting": [{"type": "0", "date_sighting": "1790000001"}]}
                      for a in range(attributes)]}} for e in range(count)]


def _map_all(raw, values):
    started = time.perf_counter()
    events, _ = mapping.parse_events(raw)
    index = mapping.index_events(events)
    for value in values:
        mapping.observe_bundle({"type": "ip", "value": value}, mapping.hits_for(index, value),
                               "https://misp.example.org", 100)
    return time.perf_counter() - started


def mapping_cost(target):
    many = _events(600, 1)
    many_values = [f"10.{e % 250}.0.0" for e in range(600)]
    wide = _events(1, 600)
    wide_values = [f"10.0.{a // 250}.{a % 250}" for a in range(600)]
    seconds = {}
    for name, raw, values in (("600 events x 1 attribute", many, many_values),
                              ("1 event x 600 attributes", wide, wide_values)):
        seconds[name] = statistics.median(_map_all(raw, values) for _ in range(5))
        print(f"  mapping 600 observables, {name}: {seconds[name] * 1000:.0f} ms")
    worst = max(seconds.values())
    target("MISP mapping of 600 observables <= 1 s", worst <= 1.0, f"{worst * 1000:.0f} ms")


def run(target):
    print("\nMISP verdict rules (issue 10) and mapping cost (issue 11.5)")
    calls_and_cpu(target)
    mapping_cost(target)
