"""`make bench`, answer cache (issue 13): observe at N = 50 repeated within the TTL.

For every provider, the relay (its own process, over HTTP) observes 50
observables once with 100 ms injected per upstream call, then the same 50
again: the repeat must make 0 upstream calls in <= 0.2 x latency. Run with
the in-process tier only, then with the shared tier on a DynamoDB table in
moto (server mode, loopback); there a second relay process, which has never
seen the observables, also repeats them (its hits come from the table).
"""
import statistics
import time

import requests

from api.tools import cli
from tests import lambda_env
from tests.emulators import base
from tests.relay_server import spawn

N = 50
FACTOR = 0.2
RUNS = 5
LATENCY = 0.1   # as tests/bench.py


def observe(relay, name, headers, observables):
    """(seconds, JSON body) of one observe sent to the relay at `relay`."""
    started = time.perf_counter()
    response = requests.post(f"{relay}/{name}/observe/observables", json=observables,
                             headers=headers, timeout=60)
    return time.perf_counter() - started, response.json()


def _repeat(relay, name, emulator, headers, observables):
    """(median seconds, upstream calls) of RUNS repeats of a cached observe."""
    emulator.reset()
    emulator.latency = LATENCY
    times = [observe(relay, name, headers, observables)[0] for _ in range(RUNS)]
    return statistics.median(times), emulator.calls


def _check(target, label, seconds, calls):
    target(label, calls == 0 and seconds <= FACTOR * LATENCY,
           f"{seconds * 1000:.1f} ms (target <= {FACTOR * LATENCY * 1000:.0f} ms), "
           f"upstream calls {calls} (target 0)")


def _tier(target, title, env, emulators, secret, second_process=False):
    print(f"\ncache, {title}: observe N={N} repeated within RELAY_CACHE_TTL")
    started = [spawn(env)]
    try:
        relay = started[0][1]
        if second_process:
            started.append(spawn(env))
        for name, emulator in emulators.items():
            headers = {"Authorization": f"Bearer {cli.mint(emulator.module.CLAIMS, secret)}"}
            observables = emulator.module.observables(N)
            emulator.reset()
            emulator.latency = LATENCY
            first, _ = observe(relay, name, headers, observables)
            print(f"  {name}: first observe {first * 1000:.0f} ms, "
                  f"{emulator.calls} upstream calls")
            repeat = _repeat(relay, name, emulator, headers, observables)
            _check(target, f"{name} repeat", *repeat)
            if second_process:
                other = started[1][1]
                # One request to another observable opens its DynamoDB client.
                observe(other, name, headers, emulator.module.observables(N + 1)[N:])
                emulator.reset()
                emulator.latency = LATENCY
                seconds, _ = observe(other, name, headers, observables)
                calls = emulator.calls
                print(f"  {name}: second process, first repeat (answers from the table) "
                      f"{seconds * 1000:.1f} ms, upstream calls {calls}")
                _check(target, f"{name} second process, warm repeat",
                       *_repeat(other, name, emulator, headers, observables))
    finally:
        for process, _ in started:
            process.terminate()
            process.wait(5)


def run(target):
    """Both tiers; `target(label, ok, detail)` is bench.py's."""
    secret = cli.generate_secret()
    emulators, env = base.start_all()
    env.update({"SECRET_KEY": secret, "AWS_EC2_METADATA_DISABLED": "true"})
    moto = lambda_env.MotoServer().start()
    try:
        _tier(target, "in-process tier", env, emulators, secret)
        table = "relay-cache-bench"
        moto.client("dynamodb").create_table(
            TableName=table, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}])
        shared = dict(env, RELAY_CACHE_TABLE=table, AWS_ENDPOINT_URL_DYNAMODB=moto.url,
                      AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1")
        _tier(target, "shared tier (DynamoDB on moto)", shared, emulators, secret,
              second_process=True)
    finally:
        moto.stop()
        for emulator in emulators.values():
            emulator.stop()


if __name__ == "__main__":   # this part alone: python -m tests.bench_cache
    from tests.bench import Report

    report = Report()
    run(report.target)
    report.finish()
