"""Pulsedive mapping as pure functions, on every real sample read in place."""
import base64
import json
from urllib.parse import unquote

import pytest

from api.providers.pulsedive import mapping
from tests import samples
from tests.ctim_check import assert_valid

INFO_SAMPLES = [
    "info_domain_cisco.com_none_retired.json",
    "info_domain_parkingcrew.net_medium_threats_feeds.json",
    "info_ip_144.76.107.175_none_retired_trimmed.json",
    "analyze_result_data_pulsedive.com.json",
]
PARKING = "info_domain_parkingcrew.net_medium_threats_feeds.json"
CISCO = "info_domain_cisco.com_none_retired.json"


def sample(name):
    return samples.load("pulsedive", name)


def observable_of(info, kind=None):
    return {"type": kind or info["type"], "value": info["indicator"]}


def valid_bundle(obs, bundle, limit=100):
    body = {"data": bundle.json()}
    assert_valid("/observe/observables", body, obs if isinstance(obs, list) else [obs],
                 limit)
    return body["data"]


@pytest.mark.parametrize("name", INFO_SAMPLES)
def test_every_info_sample_maps_to_a_valid_bundle(name):
    info = sample(name)
    obs = observable_of(info)
    data = valid_bundle(obs, mapping.bundle(obs, info, 100))
    assert data["verdicts"]["count"] == 1
    assert data["judgements"]["docs"][0]["observable"] == obs
    factors = len(info.get("riskfactors", []))
    links = factors + len(info.get("threats", [])) + len(info.get("feeds", []))
    assert data.get("indicators", {}).get("count", 0) == links
    assert data.get("relationships", {}).get("count", 0) == links


def test_parkingcrew_sample_mapping_in_detail():
    info = sample(PARKING)
    obs = {"type": "domain", "value": "parkingcrew.net"}
    data = valid_bundle(obs, mapping.bundle(obs, info, 100))
    judgement = data["judgements"]["docs"][0]
    assert (judgement["disposition"], judgement["severity"]) == (3, "Medium")
    assert judgement["valid_time"] == {"start_time": "2020-03-31T14:47:36Z",
                                       "end_time": "2020-06-30T20:47:36Z"}
    assert judgement["source_uri"] == "https://pulsedive.com/indicator/?iid=118"
    verdict = data["verdicts"]["docs"][0]
    assert verdict["judgement_id"] == judgement["id"]
    titles = [doc["title"] for doc in data["indicators"]["docs"]]
    # Risk factors first, then threats and feeds, newest link first.
    assert titles == ["found in threat feeds", "registration recently updated",
                      "Threat: Kraken Botnet", "Threat: JS Crypto Miner",
                      "Feed: BBcan177 DNSBL"]
    feed = data["indicators"]["docs"][-1]
    assert feed["producer"] == "BBcan177"
    assert feed["source_uri"] == "https://pulsedive.com/feed/?fid=13"
    assert data["indicators"]["docs"][2]["tags"] == ["malware"]
    kinds = [rel["relationship_type"] for rel in data["relationships"]["docs"]]
    assert kinds == ["sighting-of"] * 4 + ["member-of"]
    # The DNS A record of the answer gives one Resolved_To sighting.
    dns = data["sightings"]["docs"][-1]
    assert dns["description"] == "Active DNS"
    assert dns["relations"] == [{
        "origin": mapping.ORIGIN, "relation": "Resolved_To", "source": obs,
        "related": {"type": "ip", "value": "185.53.179.29"}}]
    threat_sighting = data["sightings"]["docs"][2]
    assert threat_sighting["observed_time"]["start_time"] == "2019-01-01T04:01:30Z"


def test_retired_none_risk_is_unknown_and_keeps_retirement_end():
    info = sample(CISCO)
    obs = {"type": "domain", "value": "cisco.com"}
    judgement = mapping.judgement(obs, info)
    assert (judgement["disposition"], judgement["severity"]) == (5, "Unknown")
    assert judgement["valid_time"]["end_time"] == "2020-02-16T09:53:53Z"
    data = valid_bundle(obs, mapping.bundle(obs, info, 100))
    dns = data["sightings"]["docs"][-1]["relations"]
    assert [r["related"] for r in dns] == [
        {"type": "ip", "value": "72.163.4.185"},
        {"type": "ipv6", "value": "2001:420:1101:1::185"}]


@pytest.mark.parametrize("risk,retired,disposition,severity", [
    ("none", None, 1, "None"), ("none", "No recent activity", 5, "Unknown"),
    ("none", 1, 5, "Unknown"), ("none", 0, 1, "None"),
    ("unknown", None, 5, "Unknown"), ("low", None, 3, "Low"),
    ("medium", "No recent activity", 3, "Medium"), ("high", None, 2, "High"),
    ("critical", None, 2, "High"), ("CRITICAL", None, 2, "High"),
    ("apocalyptic", None, 5, "Unknown"),
])
def test_risk_table(risk, retired, disposition, severity):
    info = {"iid": 1, "risk": risk, "retired": retired, "stamp_seen": "2024-01-01 00:00:00"}
    obs = {"type": "ip", "value": "192.0.2.1"}
    judgement = mapping.judgement(obs, info)
    assert (judgement["disposition"], judgement["severity"]) == (disposition, severity)
    assert mapping.verdict(obs, info)["disposition"] == disposition


def test_entities_keep_the_requested_observable_not_pulsedives():
    info = sample(PARKING)
    obs = {"type": "hostname", "value": "PARKINGCREW.net"}
    data = valid_bundle(obs, mapping.bundle(obs, info, 100))
    assert data["verdicts"]["docs"][0]["observable"] == obs
    for sighting in data["sightings"]["docs"]:
        assert sighting["observables"] == [obs]
    assert data["sightings"]["docs"][-1]["relations"][0]["source"] == obs


@pytest.mark.parametrize("limit", [1, 2, 5])
def test_entities_limit_caps_indicators_and_sightings(limit):
    info = sample(PARKING)
    obs = {"type": "domain", "value": "parkingcrew.net"}
    data = valid_bundle(obs, mapping.bundle(obs, info, limit), limit)
    assert data["indicators"]["count"] == min(limit, 5)
    assert data["sightings"]["count"] == min(limit, 6)
    assert data["relationships"]["count"] == min(limit, 5)
    assert data["indicators"]["docs"][0]["title"] == "found in threat feeds"


def test_shared_findings_have_one_indicator_id():
    info = sample(PARKING)
    first = mapping.bundle({"type": "domain", "value": "a.example"}, info, 100)
    second = mapping.bundle({"type": "domain", "value": "b.example"}, info, 100)
    ids = lambda b: [d["id"] for d in b.docs("indicators")]  # noqa: E731
    assert ids(first) == ids(second)
    first.merge(second)
    data = valid_bundle([{"type": "domain", "value": "a.example"},
                         {"type": "domain", "value": "b.example"}], first)
    assert data["indicators"]["count"] == 5
    assert data["sightings"]["count"] == 12
    assert data["verdicts"]["count"] == 2


def test_duplicate_findings_inside_one_answer_are_kept_once():
    info = {"iid": 5, "risk": "low", "stamp_seen": "2024-01-01 00:00:00",
            "riskfactors": [{"rfid": 1, "description": "x", "risk": "low"}] * 2}
    obs = {"type": "ip", "value": "192.0.2.1"}
    data = valid_bundle(obs, mapping.bundle(obs, info, 100))
    assert data["indicators"]["count"] == data["sightings"]["count"] == 1


@pytest.mark.parametrize("broken,detail", [
    ([], "not an object"),
    ({"iid": 1}, "no 'risk'"),
    ({"risk": None}, "no 'risk'"),
    ({"risk": "low", "riskfactors": "many"}, "'riskfactors' is not a list"),
    ({"risk": "low", "threats": [{"tid": 1}]}, "an item of 'threats' has no 'name'"),
    ({"risk": "low", "feeds": ["feed"]}, "an item of 'feeds' has no 'name'"),
])
def test_missing_fields_raise_data_structure_changed(broken, detail):
    with pytest.raises(mapping.DataStructureChanged) as caught:
        mapping.bundle({"type": "ip", "value": "192.0.2.1"}, broken, 100)
    assert detail in caught.value.message
    assert "data structure of the Pulsedive API has changed" in caught.value.message


def test_unreadable_or_inverted_times_stay_valid():
    info = {"risk": "high", "stamp_seen": "garbage", "stamp_updated": None,
            "stamp_retired": "2001-01-01 00:00:00",
            "threats": [{"name": "T", "stamp_linked": ""}]}
    obs = {"type": "url", "value": "http://x.example/a b"}
    data = valid_bundle(obs, mapping.bundle(obs, info, 100))
    judgement = data["judgements"]["docs"][0]
    assert judgement["valid_time"]["start_time"] <= judgement["valid_time"]["end_time"]
    assert "source_uri" not in judgement     # no iid, no page


def test_links_relations_for_ip_from_the_links_sample():
    links = sample("info_get_links_active_dns.json")
    obs = {"type": "ip", "value": "187.191.98.202"}
    # The sample links an IP to an IP: not a DNS resolution, so nothing.
    assert mapping.links_relations(obs, links) == []
    links = {"Active DNS": [dict(links["Active DNS"][0], type="domain",
                                 indicator="host.example")]}
    assert mapping.links_relations(obs, links) == [{
        "origin": mapping.ORIGIN, "relation": "Resolved_To",
        "source": {"type": "domain", "value": "host.example"}, "related": obs}]
    assert mapping.links_relations({"type": "domain", "value": "x"}, links) == []


def decoded_query(url):
    assert url.startswith("https://pulsedive.com/browse/?q=")
    encoded = unquote(url.split("?q=", 1)[1])
    return json.loads(base64.b64decode(encoded))


def test_search_reference_encodes_everything():
    value = 'http://evil.example/a?b=1&c="2"#x y'
    obs = {"type": "url", "value": value}
    ref = mapping.search_reference(obs)
    assert ref["id"] == ("ref-pulsedive-search-url-http%3A%2F%2Fevil.example%2Fa%3Fb%3D1"
                         "%26c%3D%222%22%23x%20y")
    assert ref["title"] == "Search for this URL"
    assert ref["categories"] == ["Search", "Pulsedive"]
    query = decoded_query(ref["url"])
    assert query["indicator"][0]["raw"]["value"] == value
    assert query["indicator"][0]["htmlsafe"]["value"] == (
        "http://evil.example/a?b=1&amp;c=&quot;2&quot;#x y")
    assert " " not in ref["url"] and "+" not in ref["url"].split("?q=")[1]


def test_detail_reference_links_the_indicator_page():
    ref = mapping.detail_reference({"type": "ipv6", "value": "2001:db8::1"}, 53929)
    assert ref == {"id": "ref-pulsedive-detail-ipv6-2001%3Adb8%3A%3A1",
                   "title": "Browse IPv6", "description": "Browse this IPv6 on Pulsedive",
                   "url": "https://pulsedive.com/indicator/?iid=53929",
                   "categories": ["Browse", "Pulsedive"]}
