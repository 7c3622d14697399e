"""CTIM building blocks shared by every provider's mapping.

Pure functions: ids, times, dispositions and the entity shapes the relay
emits. Providers pass in their own source names and defaults.
"""
import uuid
from datetime import datetime, timedelta, timezone

SCHEMA_VERSION = "1.1.5"
FOREVER = "2525-01-01T00:00:00Z"
HASH_TYPES = frozenset({"md5", "sha1", "sha256"})
# How refer links, actions and docs name the observable types.
TYPE_NAMES = {"ip": "IP", "ipv6": "IPv6", "domain": "domain", "hostname": "hostname",
              "url": "URL", "md5": "MD5", "sha1": "SHA1", "sha256": "SHA256",
              "email": "email"}

CLEAN, MALICIOUS, SUSPICIOUS, COMMON, UNKNOWN = 1, 2, 3, 4, 5
DISPOSITION_NAMES = {
    CLEAN: "Clean",
    MALICIOUS: "Malicious",
    SUSPICIOUS: "Suspicious",
    COMMON: "Common",
    UNKNOWN: "Unknown",
}
# CTIM's tie-break between judgements of equal priority.
_TIE_BREAK = {CLEAN: 0, MALICIOUS: 1, SUSPICIOUS: 2, COMMON: 3, UNKNOWN: 4}

_NAMESPACE = uuid.UUID("6c8d2a8e-1f55-4a8b-9a43-1d7b8f1c0e42")


def transient_id(entity_type, seed=None):
    """`transient:<type>-<uuid>`; deterministic when `seed` is given."""
    if seed is None:
        value = uuid.uuid4()
    else:
        value = uuid.uuid5(_NAMESPACE, f"{entity_type}:{seed}")
    return f"transient:{entity_type}-{value}"


def utc_now():
    return datetime.now(timezone.utc)


def iso(moment):
    """RFC 3339 UTC with a `Z`, to the second."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_timestamp(seconds):
    return iso(datetime.fromtimestamp(int(seconds), timezone.utc))


def parse_time(text):
    """A provider timestamp as an aware datetime, or None when unreadable.

    Accepts ISO 8601 with or without offset (naive means UTC), a bare date,
    and unix seconds. A moment CTIM cannot carry with a validity after it
    (before 1970, from 2500 on) is unreadable too.
    """
    if text is None or text == "" or isinstance(text, bool):
        return None
    if isinstance(text, (int, float)) or (isinstance(text, str) and text.isdigit()):
        try:
            moment = datetime.fromtimestamp(int(text), timezone.utc)
        except (OverflowError, ValueError, OSError):
            return None
    else:
        value = str(text).strip().replace(" ", "T", 1)
        if value.endswith("Z"):
            value = value[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
    return moment if 1970 <= moment.astimezone(timezone.utc).year < 2500 else None


def valid_time(observable_type, start=None, days=7):
    """Judgement/verdict validity: `days` from `start`, hashes until 2525."""
    start = start or utc_now()
    if observable_type in HASH_TYPES:
        end = FOREVER
    else:
        end = iso(start + timedelta(days=days))
    return {"start_time": iso(start), "end_time": end}


def observed_time(start, end=None):
    return {"start_time": start, "end_time": end or start}


def judgement(observable, disposition, source, *, priority=85,
              confidence="Medium", severity="Medium", valid=None, **extra):
    doc = {
        "id": transient_id("judgement"),
        "type": "judgement",
        "schema_version": SCHEMA_VERSION,
        "source": source,
        "observable": dict(observable),
        "disposition": disposition,
        "disposition_name": DISPOSITION_NAMES[disposition],
        "priority": priority,
        "confidence": confidence,
        "severity": severity,
        "valid_time": valid or valid_time(observable["type"]),
    }
    doc.update({k: v for k, v in extra.items() if v not in (None, "", [])})
    return doc


def verdict(observable, disposition, valid, judgement_id=None):
    doc = {
        "type": "verdict",
        "observable": dict(observable),
        "disposition": disposition,
        "disposition_name": DISPOSITION_NAMES[disposition],
        "valid_time": dict(valid),
    }
    if judgement_id:
        doc["judgement_id"] = judgement_id
    return doc


def disposition_rank(disposition):
    """Sort key of CTIM's tie-break: Clean first, Unknown last."""
    return _TIE_BREAK[disposition]


def best_judgement(judgements):
    """The judgement CTIM would pick for the verdict: priority, then tie-break."""
    if not judgements:
        return None
    return min(judgements,
               key=lambda j: (-j["priority"], _TIE_BREAK[j["disposition"]]))


def verdict_for(judgements):
    """One verdict from `judgements` (all on one observable), or None."""
    chosen = best_judgement(judgements)
    if chosen is None:
        return None
    return verdict(chosen["observable"], chosen["disposition"],
                   chosen["valid_time"], chosen["id"])


def entity(entity_type, id_seed=None, **fields):
    """A CTIM entity with id, type and schema_version; empty fields dropped."""
    doc = {
        "id": transient_id(entity_type, id_seed),
        "type": entity_type,
        "schema_version": SCHEMA_VERSION,
    }
    doc.update({k: v for k, v in fields.items() if v not in (None, "", [], {})})
    return doc


def relationship(source_ref, relationship_type, target_ref, **fields):
    return entity("relationship", source_ref=source_ref,
                  relationship_type=relationship_type,
                  target_ref=target_ref, **fields)


def tlp_from_tags(tags, default=None):
    """The CTIM TLP of the first `tlp:<colour>` tag (clear becomes white)."""
    for tag in tags:
        name = str(tag).strip().lower()
        if name.startswith("tlp:"):
            colour = name[4:].strip()
            colour = {"clear": "white", "amber+strict": "amber"}.get(colour, colour)
            if colour in ("red", "amber", "green", "white"):
                return colour
    return default


def clip(text, limit):
    """`text` cut to `limit` characters (CTIM string maxima), None if blank."""
    if text is None:
        return None
    text = str(text).strip()
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"
