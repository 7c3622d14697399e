"""Rate-limit state (issue 11 item 8): keyed by provider + `key` claim, bounded,
finite clamps, a learned pace that recovers."""
import time

import pytest

from api import ratelimit
from api.context import RequestContext
from api.errors import TooManyRequestsError
from api.providers.misp.client import MispGate
from api.providers.pulsedive.client import PulsediveGate
from api.settings import Settings
from tests.conftest import SECRET, bearer
from tests.emulators import pulsedive as pulsedive_emulator


class FakeResponse:
    def __init__(self, status_code, headers=None):
        self.status_code = status_code
        self.headers = headers or {}

    def json(self):
        raise ValueError("no body")


def context(**claims):
    return RequestContext("Test", Settings.from_env({"SECRET_KEY": SECRET}), claims=claims)


@pytest.fixture
def pulsedive(use_emulator, relay_env):
    relay_env.setenv("RELAY_CACHE_TTL", "0")
    return use_emulator("pulsedive")


def observe(client, observables, **claims):
    return client.post("/pulsedive/observe/observables", json=observables,
                       headers=bearer(dict(pulsedive_emulator.CLAIMS, **claims))).get_json()


def test_tokens_differing_only_in_iat_share_a_closed_key(client, pulsedive):
    first, second = pulsedive_emulator.observables(2)
    pulsedive.fail = {first["value"]: 429}
    pulsedive.options["retry_after"] = "60"
    body = observe(client, [first], iat=1)
    assert body["errors"][0]["code"] == "too many requests"
    pulsedive.reset()
    body = observe(client, [second], iat=2)
    assert body["errors"][0]["code"] == "too many requests"
    assert pulsedive.calls == 0


def test_gates_are_keyed_by_the_key_claim_only():
    gate = ratelimit.RateGate.for_credential("p", context(key="a", iat=1))
    assert gate is ratelimit.RateGate.for_credential("p", context(key="a", iat=2, exp=9))
    assert gate is not ratelimit.RateGate.for_credential("p", context(key="b"))
    assert gate is not ratelimit.RateGate.for_credential("q", context(key="a"))
    assert "a" not in gate.partition.split("#")


def test_gates_are_bounded_least_recently_used_out(monkeypatch):
    monkeypatch.setattr(ratelimit, "MAX_GATES", 50)
    kept = ratelimit.RateGate.for_credential("p", context(key="kept"))
    for number in range(3000):
        ratelimit.RateGate.for_credential("p", context(key=f"tenant-{number}"))
        if number % 10 == 0:
            ratelimit.RateGate.for_credential("p", context(key="kept"))
    assert len(ratelimit._gates) == 50
    assert ratelimit.RateGate.for_credential("p", context(key="kept")) is kept


@pytest.mark.parametrize("header", ["inf", "Infinity", "1e308", "99999999999"])
def test_retry_after_is_clamped_to_a_finite_closure(header):
    gate = ratelimit.RateGate()
    gate.observe(FakeResponse(429, {"Retry-After": header}))
    assert 0 < gate.blocked_for() <= ratelimit.MAX_CLOSED
    pulsedive_gate = PulsediveGate()
    pulsedive_gate.observe(FakeResponse(429, {"Retry-After": header}))
    assert 0 < pulsedive_gate.blocked_for() <= ratelimit.MAX_CLOSED


@pytest.mark.parametrize("header", ["inf", "1e308", "-inf", "nan", "soon"])
def test_misp_reset_header_is_clamped(header):
    gate = MispGate()
    gate.observe(FakeResponse(429, {"X-Rate-Limit-Reset": header}))
    assert 0 <= gate.blocked_for() <= ratelimit.MAX_CLOSED


def test_seconds_parsing():
    assert ratelimit.seconds("12") == 12.0
    assert ratelimit.seconds("-3") == 0.0
    assert ratelimit.seconds("inf") == ratelimit.MAX_CLOSED
    assert ratelimit.seconds("nan", 7) == 7
    assert ratelimit.seconds(None, 5) == 5
    assert ratelimit.retry_after(FakeResponse(429, {"Retry-After": "soon"}), 5) == 5


def test_a_learned_pace_recovers(monkeypatch):
    monkeypatch.setattr(ratelimit, "PACE_MEMORY", 0.2)
    gate = PulsediveGate()
    gate.observe(FakeResponse(200, {"X-Requests-Remaining-Second": "0"}))
    assert gate.per_second == 1
    time.sleep(0.25)
    assert gate.per_second is None
    started = time.monotonic()
    for _ in range(3):
        gate.wait(context(), "Test")     # no pacing any more
    assert time.monotonic() - started < 0.5
    # A plan with more room relaxes the pace at once.
    gate.observe(FakeResponse(200, {"X-Requests-Remaining-Second": "0"}))
    gate.observe(FakeResponse(200, {"X-Requests-Remaining-Second": "9"}))
    assert gate.per_second == 10


def test_closed_gate_fails_fast_and_short_closure_is_slept_out():
    gate = ratelimit.RateGate()
    gate.observe(FakeResponse(429, {"Retry-After": "30"}))
    assert 29 < gate.blocked_for() <= 30
    with pytest.raises(TooManyRequestsError):
        gate.wait(context(), "Test")
    gate = ratelimit.RateGate()
    gate.block(0.2, "slow down")
    started = time.monotonic()
    gate.wait(context(), "Test")
    assert 0.15 < time.monotonic() - started < 1.0
