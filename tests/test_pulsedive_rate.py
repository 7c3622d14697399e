"""Pulsedive rate limits: 429 handling, quota headers and per-second pacing."""
import time
from types import MappingProxyType

import pytest

from api.context import RequestContext
from api.providers.pulsedive import PROVIDER
from api.providers.pulsedive import client as pulsedive_client
from api.providers.pulsedive.provider import IidCache
from api.settings import Settings
from tests import samples
from tests.conftest import bearer
from tests.emulators import pulsedive as emulator_module

KEY = emulator_module.CLAIMS


@pytest.fixture
def emu(use_emulator, relay_env):
    PROVIDER.iids.clear()
    relay_env.setenv("RELAY_CACHE_TTL", "0")   # every lookup goes upstream here
    return use_emulator("pulsedive")


def observe(client, observables, prefix="/pulsedive"):
    response = client.post(prefix + "/observe/observables", json=observables,
                           headers=bearer(KEY))
    return response.get_json()


def values_with_verdicts(body):
    return {v["observable"]["value"]
            for v in body.get("data", {}).get("verdicts", {}).get("docs", [])}


def test_429_is_too_many_requests_and_closes_the_key(client, emu, relay_env):
    relay_env.setenv("RELAY_CONCURRENCY", "1")    # one call after the other
    observables = emulator_module.observables(4)
    emu.fail = {observables[1]["value"]: 429}
    emu.options["retry_after"] = "60"
    body = observe(client, observables)
    assert values_with_verdicts(body) == {observables[0]["value"]}
    [error] = body["errors"]
    assert error["code"] == "too many requests"
    # Pulsedive's own words, once, naming every observable it cost.
    assert error["message"].endswith(emulator_module.RATE_MESSAGE.format(
        n=1, period="second"))
    assert all(o["value"] in error["message"] for o in observables[1:])
    # Nothing went out after the 429.
    assert emu.calls == 2
    # A later request with the same key fails fast without calling Pulsedive.
    body = observe(client, observables[:1])
    assert body["errors"][0]["code"] == "too many requests"
    health = client.post("/pulsedive/health", headers=bearer(KEY)).get_json()
    assert health["errors"][0]["code"] == "too many requests"
    assert emu.calls == 2


def test_day_quota_429_names_the_quota(client, emu, relay_env):
    relay_env.setenv("RELAY_CONCURRENCY", "1")
    emu.options["day_limit"] = 0
    body = observe(client, emulator_module.observables(3))
    assert "API rate limit exceeded: 0 requests per day." in body["errors"][0]["message"]
    assert emu.calls == 1


def test_real_429_sample_with_retry_after(client, emu):
    body429 = samples.load("pulsedive", "error_429_rate_limit.json")
    ip = emulator_module.observables(1)[0]
    emu.options["responses"] = {ip["value"]: (429, body429, {"Retry-After": "120"})}
    body = observe(client, [ip])
    assert body["errors"][0] == {
        "type": "fatal", "code": "too many requests",
        "message": f"ip {ip['value']}: {body429['error']}"}
    # The sample's limit is per second, but Retry-After (120 s) wins: closed.
    assert emu.calls == 1
    body = observe(client, emulator_module.observables(3))
    assert body["errors"][0]["code"] == "too many requests"
    assert emu.calls == 1


def test_429_without_any_hint_closes_the_key_for_a_minute(client, emu):
    ip = emulator_module.observables(1)[0]
    emu.options["responses"] = {ip["value"]: (429, "<html>slow down</html>")}
    body = observe(client, [ip])
    assert body["errors"][0]["message"].endswith("Pulsedive rate limit exceeded")
    ctx = RequestContext(provider="Pulsedive", settings=Settings.from_env(),
                         claims=MappingProxyType(dict(KEY)))
    assert 55 < pulsedive_client.gate(ctx).blocked_for() <= 60


def test_day_quota_header_at_zero_closes_the_key(client, emu):
    emu.options["day_limit"] = 2
    first, second = emulator_module.observables(2)
    assert "errors" not in observe(client, [first])
    assert "errors" not in observe(client, [second])    # answer says 0 left
    body = observe(client, [first, second])
    assert body["errors"][0]["code"] == "too many requests"
    assert "daily request quota" in body["errors"][0]["message"]
    assert emu.calls == 2


def test_per_second_limit_is_paced_not_failed(client, emu):
    emu.rate_limit = 5
    observables = emulator_module.observables(8)
    started = time.monotonic()
    body = observe(client, observables)
    elapsed = time.monotonic() - started
    assert "errors" not in body, body.get("errors")
    assert values_with_verdicts(body) == {o["value"] for o in observables}
    # Eight calls at five a second need more than one window.
    assert elapsed >= 0.5
    # Now the key's pace is known: the next request sends no call that 429s.
    calls = emu.calls
    body = observe(client, emulator_module.observables(12)[8:])
    assert "errors" not in body
    assert emu.calls - calls == 4


def test_pacing_fails_fast_at_the_deadline(client, emu, relay_env):
    relay_env.setenv("RELAY_DEADLINE", "1.5")
    emu.rate_limit = 1
    observables = emulator_module.observables(5)
    started = time.monotonic()
    body = observe(client, observables)
    elapsed = time.monotonic() - started
    assert elapsed < 1.5 + 0.5
    assert body["errors"][0]["code"] == "too many requests"
    assert 1 <= len(values_with_verdicts(body)) < 5
    # Never more than the limit allows, plus the first wave that found it.
    assert emu.calls <= 5 + 2


def test_iid_cache_is_bounded():
    cache = IidCache(size=2)
    obs = [{"type": "ip", "value": f"192.0.2.{i}"} for i in range(3)]
    for i, item in enumerate(obs):
        cache.put("tenant", item, i)
    assert cache.get("tenant", obs[0]) is None
    assert cache.get("tenant", obs[2]) == 2
    assert cache.get("other", obs[2]) is None
