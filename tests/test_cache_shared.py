"""The shared tier (RELAY_CACHE_TABLE) against moto in server mode: two relay
processes sharing one DynamoDB table, and the table going away mid-test."""
import socket
import time
import uuid

import pytest
import requests

from api import cache, ratelimit
from api.cache import dynamo
from api.context import RequestContext
from api.settings import Settings
from api.tools import cli
from tests import lambda_env
from tests.conftest import SECRET, bearer
from tests.emulators import pulsedive
from tests.relay_server import spawn
from tests.test_cache import differences

KEY_SCHEMA = [{"AttributeName": "pk", "KeyType": "HASH"},
              {"AttributeName": "sk", "KeyType": "RANGE"}]


def create_table(moto):
    """The table as README/aws document it (pk/sk strings, TTL on `expires`)."""
    name = f"relay-cache-{uuid.uuid4().hex[:8]}"
    dynamodb = moto.client("dynamodb")
    dynamodb.create_table(
        TableName=name, KeySchema=KEY_SCHEMA, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}])
    dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification={
        "Enabled": True, "AttributeName": "expires"})
    return name


@pytest.fixture(scope="module")
def moto():
    server = lambda_env.MotoServer().start()
    yield server
    server.stop()


class Relays:
    def __init__(self, emulator, moto, table, count):
        env = {"SECRET_KEY": SECRET, pulsedive.ENV_VAR: emulator.url,
               "RELAY_CACHE_TABLE": table, "AWS_ENDPOINT_URL_DYNAMODB": moto.url,
               "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
        self.started = [spawn(env) for _ in range(count)]
        self.headers = {"Authorization": f"Bearer {cli.mint(pulsedive.CLAIMS, SECRET)}"}

    def observe(self, index, observables):
        url = self.started[index][1] + "/pulsedive/observe/observables"
        return requests.post(url, json=observables, headers=self.headers, timeout=30).json()

    def stop(self):
        """Stop every relay; returns their stderr texts."""
        texts = []
        for process, _ in self.started:
            process.terminate()
            texts.append(process.communicate(timeout=10)[1].decode())
        return texts


@pytest.fixture
def relays(use_emulator):
    started = []

    def start(moto, table, count=2):
        group = Relays(use_emulator("pulsedive"), moto, table, count)
        started.append(group)
        return group
    yield start
    for group in started:
        group.stop()


def values(body):
    return {v["observable"]["value"] for v in body["data"]["verdicts"]["docs"]}


def test_second_process_repeat_observe_makes_no_upstream_call(moto, relays, emulators):
    emu = emulators["pulsedive"]
    table = create_table(moto)
    group = relays(moto, table)
    observables = pulsedive.observables(3)
    first = group.observe(0, observables)
    assert "errors" not in first and emu.calls == 3
    emu.reset()
    second = group.observe(1, observables)
    assert "errors" not in second and emu.calls == 0
    assert not differences(second, first)
    # The table holds neither the API key nor the values in clear.
    items = moto.client("dynamodb").scan(TableName=table)["Items"]
    assert len(items) == 3
    dumped = repr(items)
    assert pulsedive.CLAIMS["key"] not in dumped
    assert not any(o["value"] in dumped for o in observables)
    assert all(int(item["expires"]["N"]) > 0 for item in items)


def test_a_429_seen_by_one_process_stops_the_other(moto, relays, emulators):
    emu = emulators["pulsedive"]
    group = relays(moto, create_table(moto))
    first, second = pulsedive.observables(2)
    emu.fail = {first["value"]: 429}
    emu.options["retry_after"] = "60"
    body = group.observe(0, [first])
    assert body["errors"][0]["code"] == "too many requests"
    emu.reset()
    body = group.observe(1, [second])
    assert body["errors"][0]["code"] == "too many requests"
    assert emu.calls == 0


def test_table_gone_mid_test_answers_still_complete_with_one_warning(relays, emulators):
    emu = emulators["pulsedive"]
    server = lambda_env.MotoServer().start()
    group = relays(server, create_table(server), count=1)
    observables = pulsedive.observables(6)
    assert "errors" not in group.observe(0, observables[:2])
    server.stop()
    for index in (2, 4):
        body = group.observe(0, observables[index:index + 2])
        assert "errors" not in body
        assert values(body) == {o["value"] for o in observables[index:index + 2]}
    emu.reset()
    assert "errors" not in group.observe(0, observables)   # in-process hits
    assert emu.calls == 0
    [stderr] = group.stop()
    assert stderr.count("is not usable") == 1, stderr
    assert pulsedive.CLAIMS["key"] not in stderr


# --- the same tier in this process (the `client` fixture) -------------------------

@pytest.fixture
def shared_env(moto, relay_env, use_emulator):
    table = create_table(moto)
    relay_env.setenv("RELAY_CACHE_TABLE", table)
    relay_env.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto.url)
    return table


def post(client, route, body):
    return client.post(f"/pulsedive/{route}", json=body, headers=bearer(pulsedive.CLAIMS))


def test_table_answers_when_the_in_process_tier_is_cold(client, use_emulator, shared_env):
    emu = use_emulator("pulsedive")
    observables = pulsedive.observables(2)
    first = post(client, "deliberate/observables", observables).get_json()
    cache.memory().clear()                      # as in a new container
    emu.reset()
    again = post(client, "deliberate/observables", observables).get_json()
    assert emu.calls == 0 and not differences(again, first)
    # A scan drops the value's items from the table too.
    target = observables[0]
    assert client.post("/pulsedive/respond/trigger", headers=bearer(pulsedive.CLAIMS), json={
        "action-id": "pulsedive-scan", "observable_type": target["type"],
        "observable_value": target["value"]}).get_json()["data"]["status"] == "success"
    cache.memory().clear()
    emu.reset()
    post(client, "deliberate/observables", observables)
    assert [r["args"]["indicator"] for r in emu.requests] == [[target["value"]]]


def test_rate_state_goes_through_the_table(client, use_emulator, shared_env, moto):
    emu = use_emulator("pulsedive")
    first, second = pulsedive.observables(2)
    emu.fail = {first["value"]: 429}
    emu.options["retry_after"] = "inf"
    body = post(client, "deliberate/observables", [first]).get_json()
    assert body["errors"][0]["code"] == "too many requests"
    [item] = [i for i in moto.client("dynamodb").scan(TableName=shared_env)["Items"]
              if i["pk"]["S"].startswith("rate#")]
    assert float(item["closed_until"]["N"]) <= time.time() + ratelimit.MAX_CLOSED
    ratelimit.reset()                           # as in a new container
    emu.reset()
    body = post(client, "deliberate/observables", [second]).get_json()
    assert body["errors"][0]["code"] == "too many requests" and emu.calls == 0


def test_a_learned_pace_is_shared(use_emulator, shared_env):
    from api.providers.pulsedive.client import PulsediveGate

    settings = Settings.from_env()
    ctx = RequestContext("Pulsedive", settings, claims=pulsedive.CLAIMS)
    gate = PulsediveGate.for_credential("pulsedive", ctx)
    gate.observe(type("R", (), {"status_code": 200,
                                "headers": {"X-Requests-Remaining-Second": "1"}})())
    ratelimit.reset()
    other = PulsediveGate.for_credential("pulsedive", ctx)
    assert other is not gate and other.per_second is None
    other.wait(ctx, "Pulsedive")
    assert other.per_second == 2


def test_slow_table_is_skipped_within_the_deadline(client, use_emulator, relay_env, caplog):
    emu = use_emulator("pulsedive")
    with socket.socket() as silent:             # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        relay_env.setenv("RELAY_CACHE_TABLE", "relay-cache")
        relay_env.setenv("AWS_ENDPOINT_URL_DYNAMODB",
                         f"http://127.0.0.1:{silent.getsockname()[1]}")
        observables = pulsedive.observables(3)
        for index in range(3):
            started = time.monotonic()
            body = post(client, "deliberate/observables", observables[index:index + 1])
            assert "errors" not in body.get_json()
            assert time.monotonic() - started < 3 * dynamo.READ_TIMEOUT + 1.0
    warnings = [r for r in caplog.records if "is not usable" in r.getMessage()]
    assert len(warnings) == 1 and emu.calls == 3


def test_misp_values_come_from_the_table_in_one_batch(client, use_emulator, shared_env, moto):
    from tests.emulators import misp

    emu = use_emulator("misp")
    observables = misp.observables(5)
    headers = bearer(misp.CLAIMS)
    first = client.post("/misp/observe/observables", json=observables, headers=headers)
    cache.memory().clear()                      # as in a new container
    emu.reset()
    moto.operations.clear()
    again = client.post("/misp/observe/observables", json=observables, headers=headers)
    assert emu.calls == 0 and not differences(again.get_json(), first.get_json())
    reads = [op for _, op, _, _ in moto.operations if op in ("GetItem", "BatchGetItem")]
    assert reads.count("BatchGetItem") == 2 and "GetItem" not in reads   # events, warninglists
