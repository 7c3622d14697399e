"""The answer cache (issue 13) over HTTP, against the emulators' call logs."""
import re
import time
from datetime import datetime

import pytest

from api import cache, ratelimit
from api.cache import keys
from api.cache.memory import ENTRY_OVERHEAD, MemoryTier
from api.context import RequestContext
from api.settings import Settings
from tests.conftest import SECRET, bearer
from tests.emulators import cyberprotect, misp, otx, pulsedive

# provider -> (emulator module, a few observables it knows, one more)
CASES = {
    "pulsedive": (pulsedive, [{"type": "ip", "value": "198.51.100.23"},
                              {"type": "domain", "value": "login-verify.example.net"}],
                  {"type": "ipv6", "value": "2001:db8:bad::23"}),
    "otx": (otx, otx.observables(2), otx.observables(3)[2]),
    "cyberprotect": (cyberprotect, cyberprotect.observables(2),
                     cyberprotect.observables(3)[2]),
}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
OTHER_KEY = "another-tenant-key-000000000000"


def post(client, provider, route, body, claims=None):
    module = misp if provider == "misp" else CASES[provider][0]
    response = client.post(f"/{provider}/{route}", json=body,
                           headers=bearer(module.CLAIMS if claims is None else claims))
    return response.get_json()


def differences(left, right, path="body"):
    """Where two bodies differ, ignoring what each response makes anew: entity
    uuids, and times computed from "now" (a judgement's validity) within 5 s."""
    if isinstance(left, dict) and isinstance(right, dict):
        if set(left) != set(right):
            return [f"{path}: keys {sorted(set(left) ^ set(right))}"]
        return [d for k in left for d in differences(left[k], right[k], f"{path}.{k}")]
    if isinstance(left, list) and isinstance(right, list):
        if len(left) != len(right):
            return [f"{path}: {len(left)} != {len(right)} items"]
        return [d for i, (a, b) in enumerate(zip(left, right))
                for d in differences(a, b, f"{path}[{i}]")]
    if isinstance(left, str) and isinstance(right, str):
        if UUID.sub("", left) == UUID.sub("", right):
            return []
        try:
            moments = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (left, right)]
        except ValueError:
            moments = None
        if moments and abs((moments[0] - moments[1]).total_seconds()) <= 5:
            return []
    return [] if left == right else [f"{path}: {left!r} != {right!r}"]


@pytest.fixture(params=list(CASES))
def case(request, use_emulator):
    emu = use_emulator(request.param)
    return request.param, emu


def test_repeat_observe_and_deliberate_make_no_upstream_call(client, case):
    provider, emu = case
    observables = CASES[provider][1]
    first = post(client, provider, "observe/observables", observables)
    assert "errors" not in first and emu.calls >= len(observables)
    emu.reset()
    again = post(client, provider, "observe/observables", observables)
    assert emu.calls == 0
    assert not differences(again, first)
    deliberated = post(client, provider, "deliberate/observables", observables)
    assert emu.calls == 0

    def dispositions(body):
        return {(v["observable"]["value"], v["disposition"])
                for v in body["data"]["verdicts"]["docs"]}
    assert dispositions(deliberated) == dispositions(first)


def test_new_observable_is_the_only_one_asked(client, case):
    provider, emu = case
    known, extra = CASES[provider][1], CASES[provider][2]
    post(client, provider, "deliberate/observables", known)
    emu.reset()
    body = post(client, provider, "deliberate/observables", known + [extra])
    assert "errors" not in body
    assert emu.calls == 1
    assert extra["value"] in repr(emu.requests[0]["path"]) + repr(emu.requests[0]["args"])


@pytest.mark.parametrize("provider", ["pulsedive", "otx"])
def test_another_credential_never_sees_a_cached_answer(client, use_emulator, provider):
    emu = use_emulator(provider)
    observables = CASES[provider][1]
    post(client, provider, "deliberate/observables", observables)
    emu.reset()
    emu.options["keys"] = (OTHER_KEY,)
    body = post(client, provider, "deliberate/observables", observables,
                claims={"key": OTHER_KEY})
    assert "errors" not in body
    assert emu.calls == len(observables)
    assert {r["args"].get("key", [r["headers"].get("X-Otx-Api-Key")])[0]
            for r in emu.requests} == {OTHER_KEY}


def test_tokens_differing_only_in_iat_share_the_cache(client, use_emulator):
    emu = use_emulator("pulsedive")
    observables = CASES["pulsedive"][1]
    post(client, "pulsedive", "deliberate/observables", observables,
         claims=dict(pulsedive.CLAIMS, iat=1))
    emu.reset()
    post(client, "pulsedive", "deliberate/observables", observables,
         claims=dict(pulsedive.CLAIMS, iat=2))
    assert emu.calls == 0


def test_entries_expire_after_the_ttl(client, case, relay_env):
    provider, emu = case
    relay_env.setenv("RELAY_CACHE_TTL", "1")
    observables = CASES[provider][1][:1]
    post(client, provider, "deliberate/observables", observables)
    emu.reset()
    post(client, provider, "deliberate/observables", observables)
    assert emu.calls == 0
    time.sleep(1.05)
    post(client, provider, "deliberate/observables", observables)
    assert emu.calls == 1


def test_ttl_zero_turns_the_cache_off(client, case, relay_env):
    provider, emu = case
    relay_env.setenv("RELAY_CACHE_TTL", "0")
    observables = CASES[provider][1][:1]
    for _ in range(2):
        post(client, provider, "deliberate/observables", observables)
    assert emu.calls == 2
    assert not len(cache.memory())


def test_ttl_is_a_module_setting_by_claim(client, use_emulator):
    emu = use_emulator("pulsedive")
    observables = CASES["pulsedive"][1][:1]
    claims = dict(pulsedive.CLAIMS, RELAY_CACHE_TTL=0)
    for _ in range(2):
        post(client, "pulsedive", "deliberate/observables", observables, claims=claims)
    assert emu.calls == 2
    body = post(client, "pulsedive", "deliberate/observables", observables,
                claims=dict(pulsedive.CLAIMS, RELAY_CACHE_TTL="soon"))
    assert body["errors"][0]["code"] == "invalid argument"
    assert "RELAY_CACHE_TTL (JWT claim)" in body["errors"][0]["message"]


@pytest.mark.parametrize("status", [500, 429, 503])
def test_errors_are_never_cached(client, case, status):
    provider, emu = case
    observable = CASES[provider][1][0]
    emu.fail[observable["value"]] = status
    body = post(client, provider, "deliberate/observables", [observable])
    assert body["errors"]
    emu.reset()
    ratelimit.reset()       # forget the closed key; the answer must not be cached
    body = post(client, provider, "deliberate/observables", [observable])
    assert "errors" not in body and emu.calls == 1


def test_timeouts_are_never_cached(client, use_emulator, relay_env):
    emu = use_emulator("cyberprotect")
    relay_env.setenv("RELAY_HTTP_TIMEOUT", "0.2")
    observable = CASES["cyberprotect"][1][0]
    emu.options["latency"] = {observable["value"]: 0.5}
    body = post(client, "cyberprotect", "deliberate/observables", [observable])
    assert body["errors"][0]["code"] == "request timeout"
    emu.reset()
    body = post(client, "cyberprotect", "deliberate/observables", [observable])
    assert "errors" not in body and emu.calls == 1


def test_scan_drops_the_value_from_the_cache(client, use_emulator):
    emu = use_emulator("pulsedive")
    observables = CASES["pulsedive"][1]
    post(client, "pulsedive", "observe/observables", observables)
    target = observables[0]
    response = client.post("/pulsedive/respond/trigger", headers=bearer(pulsedive.CLAIMS),
                           json={"action-id": "pulsedive-scan",
                                 "observable_type": target["type"],
                                 "observable_value": target["value"]})
    assert response.get_json()["data"]["status"] == "success"
    emu.reset()
    post(client, "pulsedive", "observe/observables", observables)
    assert emu.calls == 1
    assert emu.requests[0]["args"]["indicator"] == [target["value"]]


def test_in_process_tier_stays_within_its_byte_bound(client, use_emulator, relay_env):
    emu = use_emulator("cyberprotect")
    relay_env.setenv("RELAY_CACHE_BYTES", str(cache.MIN_BYTES))
    observables = cyberprotect.observables(120)
    post(client, "cyberprotect", "deliberate/observables", observables)
    tier = cache.memory()
    assert 0 < tier.bytes <= cache.MIN_BYTES
    assert len(tier) < len(observables)
    emu.reset()
    # The newest answers stayed, the oldest were evicted.
    post(client, "cyberprotect", "deliberate/observables", observables[-1:])
    assert emu.calls == 0
    post(client, "cyberprotect", "deliberate/observables", observables[:1])
    assert emu.calls == 1


# --- MISP: one batched search for what the cache does not hold -------------------------

def misp_searches(emu):
    return [r["json"]["value"] for r in emu.requests if r["path"] == "/events/restSearch"]


def test_misp_repeat_makes_no_call_and_new_values_go_in_one_search(client, use_emulator):
    emu = use_emulator("misp")
    observables = misp.observables(5)
    first = post(client, "misp", "observe/observables", observables[:3])
    assert "errors" not in first and len(misp_searches(emu)) == 1
    emu.reset()
    again = post(client, "misp", "observe/observables", observables[:3])
    assert emu.calls == 0 and not differences(again, first)
    post(client, "misp", "deliberate/observables", observables[:3])
    assert emu.calls == 0
    body = post(client, "misp", "observe/observables", observables)
    assert "errors" not in body and body["data"]["verdicts"]["count"] == 5
    assert misp_searches(emu) == [[o["value"] for o in observables[3:]]]


def test_misp_settings_that_change_the_search_are_part_of_the_key(client, use_emulator):
    emu = use_emulator("misp")
    observables = misp.observables(2)
    post(client, "misp", "deliberate/observables", observables)
    emu.reset()
    post(client, "misp", "deliberate/observables", observables,
         claims=dict(misp.CLAIMS, MISP_IDS_ONLY=True))
    [search] = [r["json"] for r in emu.requests if r["path"] == "/events/restSearch"]
    assert search["to_ids"] == 1


def test_misp_sighting_drops_the_value(client, use_emulator):
    emu = use_emulator("misp")
    observables = misp.observables(2)
    post(client, "misp", "observe/observables", observables)
    target = observables[0]["value"]
    response = client.post("/misp/respond/trigger", headers=bearer(misp.CLAIMS), json={
        "action-id": "misp-add-sighting", "observable_type": "ip",
        "observable_value": target})
    assert response.get_json()["data"]["status"] == "success"
    emu.reset()
    post(client, "misp", "observe/observables", observables)
    assert misp_searches(emu) == [[target]]


# --- the pieces, directly ---------------------------------------------------------

def context(ttl="300", **claims):
    settings = Settings.from_env({"SECRET_KEY": SECRET, "RELAY_CACHE_TTL": ttl})
    return RequestContext(provider="Test", settings=settings, claims=claims)


def test_fetch_counts_hits_and_stores_nothing_on_error():
    ctx = context(key="k")
    calls = []

    def load():
        calls.append(1)
        return {"answer": len(calls)}

    assert cache.fetch(ctx, "p", "kind", "v", load) == {"answer": 1}
    got = cache.fetch(ctx, "p", "kind", "v", load)
    assert got == {"answer": 1} and ctx.stats.cache_hits == 1
    got["answer"] = "changed by the caller"
    assert cache.fetch(ctx, "p", "kind", "v", load) == {"answer": 1}
    assert cache.fetch(ctx, "p", "other kind", "v", load) == {"answer": 2}

    def fail():
        raise RuntimeError("upstream broke")
    with pytest.raises(RuntimeError):
        cache.fetch(ctx, "p", "kind", "w", fail)
    assert cache.fetch(ctx, "p", "kind", "w", load) == {"answer": 3}


def test_fetch_many_loads_only_the_missing_values():
    ctx = context(key="k")
    asked = []

    def load_many(values):
        asked.append(list(values))
        return {value: [value.upper()] for value in values if value != "none"}, []

    assert cache.fetch_many(ctx, "p", "search", ["a", "b"], load_many) == (
        {"a": ["A"], "b": ["B"]}, [])
    assert cache.fetch_many(ctx, "p", "search", ["b", "c", "a", "none"], load_many) == (
        {"a": ["A"], "b": ["B"], "c": ["C"], "none": None}, [])
    assert asked == [["a", "b"], ["c", "none"]]
    cache.fetch_many(ctx, "p", "search", ["none"], load_many)
    assert asked[-1] == ["c", "none"]          # "no answer" is an answer too
    cache.invalidate(ctx, "p", "a")
    cache.fetch_many(ctx, "p", "search", ["a", "b"], load_many)
    assert asked[-1] == ["a"]
    cache.fetch_many(context("0", key="k"), "p", "search", ["a"], load_many)
    assert asked[-1] == ["a"] and len(asked) == 4


def test_fetch_many_keeps_nothing_from_a_partial_answer():
    ctx = context(key="k")
    problem = RuntimeError("page 2 failed")

    def partial(values):
        return {value: [value] for value in values}, [problem]

    assert cache.fetch_many(ctx, "p", "search", ["a"], partial) == ({"a": ["a"]}, [problem])
    assert cache.fetch_many(ctx, "p", "search", ["a"], partial)[1] == [problem]


def test_credential_tag_hides_the_key_and_ignores_other_claims():
    a = keys.credential_tag(context(key="super-secret-key", iat=1), "otx")
    assert "super-secret" not in a and len(a) == 32
    assert a == keys.credential_tag(context(key="super-secret-key", iat=2), "otx")
    assert a != keys.credential_tag(context(key="other"), "otx")
    assert a != keys.credential_tag(context(key="super-secret-key"), "misp")


def test_memory_tier_evicts_least_recently_used_first():
    def key(value):
        return keys.EntryKey("p", "c", value, "k")
    size = 100 + key("a").size() + ENTRY_OVERHEAD
    tier = MemoryTier(max_bytes=8 * size)       # room for 8 entries
    for value in "abcdefgh":
        assert tier.put(key(value), b"x" * 100, 1.0)
    assert tier.get(key("a"), 0) is not None     # "a" is now the most recent
    tier.put(key("i"), b"x" * 100, 1.0)
    assert tier.get(key("b"), 0) is None and tier.get(key("a"), 0) is not None
    assert tier.bytes == 8 * size
    assert tier.get(key("c"), not_before=2.0) is None   # too old: dropped
    assert not tier.put(key("big"), b"x" * tier.max_bytes, 1.0)
    tier.drop_owner(("p", "a"))
    assert tier.get(key("a"), 0) is None
