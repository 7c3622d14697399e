"""AlienVault OTX JSON -> CTIM: pure functions, constant defaults beside them.

A pulse is OTX's list of indicators about one threat, so each pulse holding
an observable becomes one CTIM indicator (shared by every observable in it),
plus a sighting of the observable and a `member-of` relationship between
them. The verdict comes from the `general` section alone.
"""
import ipaddress
import re
from collections import namedtuple
from urllib.parse import quote

from api import ctim
from api.errors import UnexpectedResponseError

SOURCE = "AlienVault OTX"

# UI page category per CTIM type (`{base}/indicator/<category>/<value>`).
UI_CATEGORIES = {
    "ip": "ip", "ipv6": "ip", "domain": "domain", "hostname": "hostname",
    "url": "url", "md5": "file", "sha1": "file", "sha256": "file", "email": "email",
}
TLPS = {"white": "white", "clear": "white", "green": "green", "amber": "amber",
        "amber+strict": "amber", "red": "red"}

SIGHTING_DEFAULTS = {"confidence": "High", "count": 1, "internal": False,
                     "source": SOURCE}
INDICATOR_DEFAULTS = {"confidence": "High", "source": SOURCE}
JUDGEMENT_PRIORITY = 85
# disposition -> (severity, confidence) of the judgement.
JUDGEMENT_STYLE = {
    ctim.CLEAN: ("Info", "High"),          # OTX's own curation says benign
    ctim.MALICIOUS: ("High", "Medium"),    # several community pulses
    ctim.SUSPICIOUS: ("Medium", "Low"),    # fewer pulses than the malicious bar
}
MAX_REFERENCES = 10
# A URL CTIM accepts (java.net.URI): a scheme, no spaces or unsafe characters.
_URL = re.compile(r"^https?://[^\s\"<>\\^`{|}]+$", re.IGNORECASE)

Thresholds = namedtuple("Thresholds", "malicious suspicious clean_validations")
DEFAULT_THRESHOLDS = Thresholds(malicious=2, suspicious=1, clean_validations=2)


# --- links ----------------------------------------------------------------------
def indicator_page(base, observable):
    """The OTX UI page of an observable."""
    category = UI_CATEGORIES[observable["type"]]
    return f"{base}/indicator/{category}/{quote(observable['value'], safe='@:')}"


def pulse_page(base, pulse_id):
    return f"{base}/pulse/{quote(pulse_id, safe='')}"


# --- reading the general section ------------------------------------------------------
# Fields of `general` the relay reads, and the JSON type each must have when present.
_GENERAL_SHAPE = {("pulse_info",): dict, ("pulse_info", "pulses"): list,
                  ("pulse_info", "count"): int, ("validation",): list,
                  ("false_positive",): list, ("False_positive",): list}
_TYPE_NAMES = {dict: "an object", list: "a list", int: "a whole number"}


def check_general(general):
    """Raise UnexpectedResponseError unless the sections read have their JSON types.

    A wrong section costs its observable; wrong records inside them (a pulse that
    is not an object, a tag that is not a string...) are skipped one by one.
    """
    for path, kind in _GENERAL_SHAPE.items():
        value = general
        for step in path:
            value = value.get(step) if isinstance(value, dict) else None
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise UnexpectedResponseError(
                f"AlienVault OTX answered a 'general' section whose '{'.'.join(path)}' "
                f"is not {_TYPE_NAMES[kind]}; its API changed")
    return general


def _items(record, name):
    """The list field `name` of a record, [] when absent or of another type."""
    value = record.get(name)
    return value if isinstance(value, list) else []


def pulses(general):
    """The pulses of a `general` answer that carry an id, newest first."""
    info = (general or {}).get("pulse_info")
    found = info.get("pulses") if isinstance(info, dict) else None
    found = found if isinstance(found, list) else []
    result = [p for p in found if isinstance(p, dict)
              and isinstance(p.get("id"), str) and p["id"].strip()]
    return sorted(result, key=_recency, reverse=True)


def _recency(pulse):
    moment = ctim.parse_time(pulse.get("modified") or pulse.get("created"))
    return moment.timestamp() if moment else 0.0


def modified_since_created(pulse):
    """Whether indicators may have joined the pulse after it was created.

    Rows of a pulse never modified were all created with it, so reading its
    indicator list would only repeat the pulse's own date.
    """
    if pulse.get("is_modified") is False:
        return False
    created, modified = pulse.get("created"), pulse.get("modified")
    return pulse.get("is_modified") is True or not created or created != modified


def pulse_count(general):
    """How many pulses hold the indicator: `count` is the total, `pulses` may be fewer."""
    info = (general or {}).get("pulse_info")
    count = info.get("count") if isinstance(info, dict) else 0
    try:
        count = int(count or 0)
    except (TypeError, ValueError):
        count = 0
    return max(count, len(pulses(general)))


def _false_positive_accepted(general):
    # The live API says `false_positive`; one recorded sample says `False_positive`.
    for key in ("false_positive", "False_positive"):
        for item in _items(general, key):
            if isinstance(item, dict) and item.get("assessment") == "accepted":
                return True
    return False


def _validations(general):
    """{source: name} of OTX's `validation` entries (whitelists, known benign)."""
    result = {}
    for item in _items(general, "validation"):
        if isinstance(item, dict):
            source = str(item.get("source") or item.get("name") or "").strip()
            if source:
                result.setdefault(source, str(item.get("name") or source).strip())
    return result


def assess(general, thresholds=DEFAULT_THRESHOLDS):
    """(disposition, reason) from a `general` answer, or None when OTX knows nothing.

    Clean: an accepted false-positive report, a `false_positive` validation, or
    at least `clean_validations` validation sources (whitelists...). Otherwise
    Malicious from `malicious` pulses up, Suspicious from `suspicious` up.
    """
    if not isinstance(general, dict):
        return None
    validations = _validations(general)
    if _false_positive_accepted(general) or "false_positive" in validations:
        return ctim.CLEAN, "Known false positive on AlienVault OTX"
    if len(validations) >= thresholds.clean_validations:
        names = ", ".join(sorted(set(validations.values())))
        return ctim.CLEAN, ctim.clip(f"Validated as benign by AlienVault OTX: {names}", 1024)
    count = pulse_count(general)
    noun = "pulse" if count == 1 else "pulses"
    if count >= thresholds.malicious:
        return ctim.MALICIOUS, f"In {count} AlienVault OTX {noun}"
    if count >= thresholds.suspicious:
        return ctim.SUSPICIOUS, f"In {count} AlienVault OTX {noun}"
    return None


def judgement(observable, general, base, thresholds=DEFAULT_THRESHOLDS, now=None):
    """A judgement on `observable`, or None when OTX gives no basis for one."""
    basis = assess(general, thresholds)
    if basis is None:
        return None
    disposition, reason = basis
    severity, confidence = JUDGEMENT_STYLE[disposition]
    return ctim.judgement(
        observable, disposition, SOURCE, priority=JUDGEMENT_PRIORITY,
        confidence=confidence, severity=severity,
        valid=ctim.valid_time(observable["type"], now),
        reason=reason, source_uri=indicator_page(base, observable))


def verdict(judgement_doc, with_reference=True):
    """The verdict of a judgement; deliberate drops the judgement reference."""
    return ctim.verdict(judgement_doc["observable"], judgement_doc["disposition"],
                        judgement_doc["valid_time"],
                        judgement_doc["id"] if with_reference else None)


# --- pulse indicator pages ---------------------------------------------------------------
_EXACT_TYPES = frozenset({"url", "URL", "URI"})   # paths are case-sensitive


def _key(kind, value):
    """A comparable form of an indicator value of OTX type or CTIM type `kind`."""
    value = value.strip()
    if kind in _EXACT_TYPES:
        return "exact", value
    if kind in ("ip", "ipv6", "IPv4", "IPv6"):
        try:
            return "ip", ipaddress.ip_address(value).compressed
        except ValueError:
            pass
    return "text", value.lower()


def same_value(observable_type, left, right):
    """Whether two indicator values name the same thing (case, IPv6 forms)."""
    if not isinstance(left, str) or not isinstance(right, str):
        return False
    return _key(observable_type, left) == _key(observable_type, right)


def index_page(page):
    """{comparable value: row} of a page of a pulse's indicators (first row wins).

    Built once per page, so many observables can look themselves up cheaply.
    A row without its own `type` (older answers) is filed under every form an
    observable of any type would look it up by, after the typed rows: it
    matches by value, with the observable's type standing in for its own.
    """
    results = page.get("results") if isinstance(page, dict) else None
    rows = [entry for entry in (results if isinstance(results, list) else ())
            if isinstance(entry, dict) and isinstance(entry.get("indicator"), str)]
    index = {}
    typeless = []
    for entry in rows:
        kind = entry.get("type")
        if isinstance(kind, str) and kind.strip():
            index.setdefault(_key(kind, entry["indicator"]), entry)
        else:
            typeless.append(entry)
    for entry in typeless:
        for kind in ("url", "ip", "domain"):   # exact, address and text forms
            index.setdefault(_key(kind, entry["indicator"]), entry)
    return index


def lookup(index, observable):
    """The observable's row in an `index_page` index, or None."""
    return index.get(_key(observable["type"], observable["value"]))


def find_entry(page, observable):
    """The observable's entry in a page of a pulse's indicators, or None."""
    return lookup(index_page(page), observable)


# --- entities ------------------------------------------------------------------------------
def _time(text):
    moment = ctim.parse_time(text)
    if moment is None or not 1970 <= moment.year < 2525:
        return None
    return ctim.iso(moment)


def _tlp(pulse):
    return TLPS.get(str(pulse.get("TLP") or pulse.get("tlp") or "").strip().lower())


def _tags(pulse):
    tags = []
    for tag in _items(pulse, "tags"):
        text = ctim.clip(tag, 1024) if isinstance(tag, str) else None
        if text and text not in tags:
            tags.append(text)
    return tags


def _references(pulse):
    refs = []
    for ref in _items(pulse, "references"):
        if isinstance(ref, str) and _URL.match(ref.strip()) and len(ref.strip()) <= 2048:
            refs.append({"source_name": SOURCE, "description": "Pulse reference",
                         "url": ref.strip()})
    return refs[:MAX_REFERENCES]


def _producer(pulse):
    author = pulse.get("author")
    name = author.get("username") if isinstance(author, dict) else None
    return ctim.clip(name or pulse.get("author_name"), 1024) or SOURCE


def pulse_start(pulse):
    """The pulse's own date: `created`, else `modified` (CTIM time or None)."""
    return _time(pulse.get("created")) or _time(pulse.get("modified"))


def indicator(pulse, base, start=None):
    """The CTIM indicator of a pulse; its id depends on the pulse id only.

    Valid from the pulse's own date, else from `start` (CTIM requires one).
    """
    pulse_id = pulse["id"].strip()
    description = pulse.get("description")
    start = pulse_start(pulse) or start
    return ctim.entity(
        "indicator", id_seed=pulse_id, **INDICATOR_DEFAULTS,
        producer=_producer(pulse),
        title=ctim.clip(pulse.get("name"), 1024) or f"AlienVault OTX pulse {pulse_id}",
        description=ctim.clip(description, 5000),
        short_description=ctim.clip(description, 2048),
        tags=_tags(pulse), tlp=_tlp(pulse),
        external_ids=[pulse_id], external_references=_references(pulse),
        source_uri=pulse_page(base, pulse_id),
        valid_time={"start_time": start or ctim.iso(ctim.utc_now())})


def seen_time(pulse, entry=None, now=None):
    """When the observable was seen in the pulse: its row's `created` when the
    row (`entry`) is known, else the pulse's own date, else `now` (when the
    relay read the pulse: a pulse OTX lists without dates still holds it)."""
    return ((_time(entry.get("created")) if entry else None) or pulse_start(pulse)
            or ctim.iso(now or ctim.utc_now()))


def sighting(observable, pulse, base, entry=None, now=None):
    """A sighting of `observable` in `pulse`, dated by `seen_time`."""
    pulse_id = pulse["id"].strip()
    seen = seen_time(pulse, entry, now)
    note = None
    entry_id = None
    if entry:
        note = ctim.clip(entry.get("title"), 2048) or ctim.clip(entry.get("description"), 2048)
        entry_id = entry.get("id")
    return ctim.entity(
        "sighting",
        id_seed=f"{pulse_id}|{observable['type']}|{observable['value']}",
        **SIGHTING_DEFAULTS,
        observables=[dict(observable)],
        observed_time=ctim.observed_time(seen),
        title=ctim.clip(pulse.get("name"), 1024) or f"AlienVault OTX pulse {pulse_id}",
        description=ctim.clip(pulse.get("description"), 5000),
        short_description=note,
        tlp=_tlp(pulse),
        external_ids=[f"{pulse_id}:{entry_id}"] if entry_id is not None else None,
        source_uri=pulse_page(base, pulse_id))


def membership(sighting_doc, indicator_doc):
    """sighting --member-of--> indicator (the observable is in the pulse)."""
    return ctim.entity(
        "relationship", id_seed=f"{sighting_doc['id']}|{indicator_doc['id']}",
        source_ref=sighting_doc["id"], relationship_type="member-of",
        target_ref=indicator_doc["id"], source=SOURCE)


def pulse_entities(observable, pulse, base, entry=None, now=None):
    """[sighting, indicator, relationship] for one pulse holding `observable`."""
    sighting_doc = sighting(observable, pulse, base, entry, now)
    indicator_doc = indicator(pulse, base, sighting_doc["observed_time"]["start_time"])
    return [sighting_doc, indicator_doc, membership(sighting_doc, indicator_doc)]
