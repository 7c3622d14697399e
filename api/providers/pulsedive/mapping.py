"""Pulsedive indicator JSON (info.php) -> CTIM dicts. Pure functions.

Every function takes the REQUESTED observable and the decoded info.php
object, so the entities name what the platform asked about (a hostname stays
a hostname), never Pulsedive's normalised indicator.
"""
import base64
import html
import ipaddress
import json
from datetime import timedelta
from urllib.parse import quote

from api import ctim
from api.bundle import Bundle
from api.errors import UnexpectedResponseError
from api.providers.base import refer_item

SOURCE = "Pulsedive"
PRODUCER = "Pulsedive"
UI_URL = "https://pulsedive.com"
TLP = "white"
CONFIDENCE = "Medium"
PRIORITY = 85
# How long a judgement holds when Pulsedive has not retired the indicator.
STORAGE_PERIOD = timedelta(days=3 * 365 / 12)
ORIGIN = "Pulsedive Enrichment Module"

# risk -> (disposition, severity); "retired" is "none" on a retired indicator.
# CTIM 1.1.x severities have no "Critical", so critical maps to High.
RISKS = {
    "none": (ctim.CLEAN, "None"),
    "unknown": (ctim.UNKNOWN, "Unknown"),
    "retired": (ctim.UNKNOWN, "Unknown"),
    "low": (ctim.SUSPICIOUS, "Low"),
    "medium": (ctim.SUSPICIOUS, "Medium"),
    "high": (ctim.MALICIOUS, "High"),
    "critical": (ctim.MALICIOUS, "High"),
}
SEVERITIES = {risk: severity for risk, (_, severity) in RISKS.items()}

# The Pulsedive browse query behind the search link (all types and risks).
_BROWSE_TYPES = ["artifact", "domain", "ip", "ipv6", "url"]
_BROWSE_RISKS = ["unknown", "none", "low", "medium", "high", "critical", "retired"]


class DataStructureChanged(UnexpectedResponseError):
    """An info.php answer lacks a field the mapping needs."""

    def __init__(self, detail):
        super().__init__(
            f"The data structure of the Pulsedive API has changed ({detail}); "
            "the relay cannot read this answer")


# --- reading the answer -------------------------------------------------------

def _list(info, name, required_field):
    """info[name] as a list of dicts that carry `required_field`."""
    items = info.get(name)
    if items is None:
        return []
    if not isinstance(items, list):
        raise DataStructureChanged(f"'{name}' is not a list")
    for item in items:
        if not isinstance(item, dict) or not _text(item.get(required_field)):
            raise DataStructureChanged(f"an item of '{name}' has no '{required_field}'")
    return items


def _text(value):
    if value is None:
        return ""
    return str(value).strip()


def check(info):
    """Raise DataStructureChanged unless `info` is a readable indicator."""
    if not isinstance(info, dict):
        raise DataStructureChanged("the answer is not an object")
    if not isinstance(info.get("risk"), str) or not info["risk"].strip():
        raise DataStructureChanged("no 'risk'")
    _list(info, "riskfactors", "description")
    _list(info, "threats", "name")
    _list(info, "feeds", "name")


def risk_of(info):
    """Pulsedive's risk, lower-cased; "retired" for a retired no-risk indicator.

    An unrecognised risk word reads as "unknown".
    """
    risk = info["risk"].strip().lower()
    if risk not in RISKS:
        return "unknown"
    # Legacy API: `retired` is a reason string or null; newer API: 0/1.
    if risk == "none" and info.get("retired") not in (None, "", 0, "0", False):
        return "retired"
    return risk


def _time(value):
    return ctim.parse_time(value) if isinstance(value, (str, int)) else None


def indicator_valid_time(info, now=None):
    """From `stamp_seen` to `stamp_retired`, or 91.25 days when not retired."""
    start = (_time(info.get("stamp_seen")) or _time(info.get("stamp_updated"))
             or _time(info.get("stamp_added")) or now or ctim.utc_now())
    end = _time(info.get("stamp_retired")) or start + STORAGE_PERIOD
    end = max(end, start)
    return {"start_time": ctim.iso(start), "end_time": ctim.iso(end)}


def _seen(info, item=None):
    """When Pulsedive linked `item` (or saw the indicator), as CTIM time."""
    moment = (_time((item or {}).get("stamp_linked")) or _time(info.get("stamp_seen"))
              or _time(info.get("stamp_updated")) or ctim.utc_now())
    return ctim.iso(moment)


def _by_link_time(items):
    """Newest link first, like Pulsedive's own pages."""
    return sorted(items, key=lambda item: _text(item.get("stamp_linked")), reverse=True)


# --- links --------------------------------------------------------------------

def indicator_url(iid, ui_url=UI_URL):
    return f"{ui_url}/indicator/?iid={quote(str(iid), safe='')}"


def _page(kind, ident, ui_url):
    if ident in (None, ""):
        return None
    return f"{ui_url}/{kind}/?{kind[0]}id={quote(str(ident), safe='')}"


def browse_query(value):
    """The JSON text of a Pulsedive browse search for exactly `value`."""
    return json.dumps({
        "type": _BROWSE_TYPES,
        "risk": _BROWSE_RISKS,
        "lastseen": ["all"],
        "indicator": [{"raw": {"type": "indicator", "value": value},
                       "htmlsafe": {"type": "indicator", "value": html.escape(value)},
                       "exact": True}],
        "attribute": [], "property": [], "threat": [], "feed": [],
    }, separators=(",", ":"))


def search_url(value, ui_url=UI_URL):
    encoded = base64.b64encode(browse_query(value).encode()).decode()
    return f"{ui_url}/browse/?q={quote(encoded, safe='')}"


def search_reference(observable, ui_url=UI_URL):
    """The refer item that searches Pulsedive for `observable`."""
    human = ctim.TYPE_NAMES[observable["type"]]
    return refer_item("pulsedive", "search", observable, f"Search for this {human}",
                      f"Lookup this {human} on Pulsedive",
                      search_url(observable["value"], ui_url), ["Search", "Pulsedive"])


def detail_reference(observable, iid, ui_url=UI_URL):
    """The refer item that opens Pulsedive's page of indicator `iid`."""
    human = ctim.TYPE_NAMES[observable["type"]]
    return refer_item("pulsedive", "detail", observable, f"Browse {human}",
                      f"Browse this {human} on Pulsedive", indicator_url(iid, ui_url),
                      ["Browse", "Pulsedive"])


# --- CTIM entities --------------------------------------------------------------

def judgement(observable, info, ui_url=UI_URL):
    """The one judgement Pulsedive's risk gives `observable`."""
    risk = risk_of(info)
    disposition, severity = RISKS[risk]
    iid = info.get("iid")
    return ctim.judgement(
        observable, disposition, SOURCE, priority=PRIORITY, confidence=CONFIDENCE,
        severity=severity, valid=indicator_valid_time(info), tlp=TLP,
        source_uri=indicator_url(iid, ui_url) if iid not in (None, "") else None,
        reason=ctim.clip(f"Pulsedive risk: {risk}", 1024))


def verdict(observable, info):
    """A verdict without a judgement reference (for deliberate)."""
    disposition, _ = RISKS[risk_of(info)]
    return ctim.verdict(observable, disposition, indicator_valid_time(info))


def _severity(risk, default):
    return SEVERITIES.get(_text(risk).lower(), default)


def _indicator(seed, title, valid, *, producer=PRODUCER, **fields):
    return ctim.entity(
        "indicator", id_seed=f"pulsedive:{seed}", producer=ctim.clip(producer, 1024),
        title=ctim.clip(title, 1024), short_description=ctim.clip(title, 2048),
        valid_time=valid, source=SOURCE, tlp=TLP, **fields)


def _sighting(observable, observed, description, **fields):
    return ctim.entity(
        "sighting", count=1, confidence=CONFIDENCE, source=SOURCE,
        observed_time=ctim.observed_time(observed),
        observables=[dict(observable)], internal=False,
        title=ctim.clip(description, 1024), description=ctim.clip(description, 5000),
        **fields)


def _feed_title(name):
    # Pulsedive feed names often end in "Feed"; keep the name readable.
    short = name[:-4].strip() if name.lower().endswith(" feed") else name
    return f"Feed: {short}"


def _findings(observable, info, ui_url):
    """(indicator, sighting, relationship_type) per riskfactor, threat, feed."""
    risk = risk_of(info)
    overall = SEVERITIES[risk]
    valid = indicator_valid_time(info)
    page = indicator_url(info["iid"], ui_url) if info.get("iid") not in (None, "") else None
    for factor in _list(info, "riskfactors", "description"):
        text = _text(factor["description"])
        severity = _severity(factor.get("risk"), overall)
        seed = f"riskfactor:{factor.get('rfid') or text}"
        yield (_indicator(seed, text, valid, severity=severity, source_uri=page),
               _sighting(observable, _seen(info), text, severity=severity,
                         source_uri=page),
               "sighting-of")
    for threat in _by_link_time(_list(info, "threats", "name")):
        name = _text(threat["name"])
        uri = _page("threat", threat.get("tid"), ui_url)
        severity = _severity(threat.get("risk"), overall)
        tags = [_text(threat["category"])] if _text(threat.get("category")) else None
        title = f"Threat: {name}"
        yield (_indicator(f"threat:{threat.get('tid') or name}", title,
                          {"start_time": _seen(info, threat)}, severity=severity,
                          tags=tags, source_uri=uri),
               _sighting(observable, _seen(info, threat), title, severity=severity,
                         source_uri=uri),
               "sighting-of")
    for feed in _by_link_time(_list(info, "feeds", "name")):
        name = _text(feed["name"])
        uri = _page("feed", feed.get("fid"), ui_url)
        tags = [_text(feed["category"])] if _text(feed.get("category")) else None
        title = _feed_title(name)
        yield (_indicator(f"feed:{feed.get('fid') or name}", title,
                          {"start_time": _seen(info, feed)},
                          producer=_text(feed.get("organization")) or PRODUCER,
                          tags=tags, source_uri=uri),
               _sighting(observable, _seen(info, feed), title, source_uri=uri),
               "member-of")


def _addresses(value):
    """IP/IPv6 observables for a DNS A/AAAA value (string or list)."""
    values = value if isinstance(value, list) else [value]
    result = []
    for item in values:
        try:
            address = ipaddress.ip_address(_text(item))
        except ValueError:
            continue
        kind = "ip" if address.version == 4 else "ipv6"
        result.append({"type": kind, "value": str(address)})
    return result


def dns_relations(observable, info):
    """`Resolved_To` relations from the DNS records info.php already carries."""
    if observable["type"] not in ("domain", "hostname"):
        return []
    properties = info.get("properties")
    dns = properties.get("dns") if isinstance(properties, dict) else None
    if not isinstance(dns, dict):
        return []
    relations = []
    for record in ("A", "AAAA"):
        for related in _addresses(dns.get(record)):
            relations.append({"origin": ORIGIN, "relation": "Resolved_To",
                              "source": dict(observable), "related": related})
    return relations


def links_relations(observable, links):
    """`Resolved_To` relations from an info.php `get=links` answer (IPs only)."""
    if observable["type"] not in ("ip", "ipv6") or not isinstance(links, dict):
        return []
    relations = []
    items = links.get("Active DNS")
    for item in items if isinstance(items, list) else ():  # optional: a bad shape adds none
        if isinstance(item, dict) and item.get("type") == "domain" and _text(
                item.get("indicator")):
            relations.append({
                "origin": ORIGIN, "relation": "Resolved_To",
                "source": {"type": "domain", "value": _text(item["indicator"])},
                "related": dict(observable)})
    return relations


def dns_sighting(observable, info, relations, ui_url=UI_URL):
    page = indicator_url(info["iid"], ui_url) if info.get("iid") not in (None, "") else None
    return _sighting(observable, _seen(info), "Active DNS", relations=relations,
                     source_uri=page)


def bundle(observable, info, limit, ui_url=UI_URL, extra_relations=()):
    """Verdict, judgement, indicators, sightings and relationships.

    Indicators and sightings are capped at `limit` each. Indicator ids are
    deterministic, so an indicator shared by two observables appears once.
    """
    check(info)
    result = Bundle()
    judged = judgement(observable, info, ui_url)
    result.add(ctim.verdict_for([judged]))
    result.add(judged)
    seen = set()
    sightings = 0
    for indicator, sighting, kind in _findings(observable, info, ui_url):
        if sightings >= limit:
            break
        if indicator["id"] in seen:
            continue
        seen.add(indicator["id"])
        sightings += 1
        result.add(indicator)
        result.add(sighting)
        result.add(ctim.relationship(sighting["id"], kind, indicator["id"],
                                     source=SOURCE, tlp=TLP))
    relations = dns_relations(observable, info) + list(extra_relations)
    if relations and sightings < limit:
        result.add(dns_sighting(observable, info, relations, ui_url))
    return result
