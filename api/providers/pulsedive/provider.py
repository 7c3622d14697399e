"""Pulsedive: declaration and orchestration (one info.php call per observable)."""
import logging
import threading
from collections import OrderedDict
from urllib.parse import quote

from api import ctim
from api.bundle import Bundle
from api.cache import keys
from api.errors import InvalidArgumentError, RelayError
from api.providers.base import Provider
from api.providers.pulsedive import client, mapping

log = logging.getLogger(__name__)

SCAN_ACTION = "pulsedive-scan"


class IidCache:
    """Pulsedive indicator ids learned by observe/deliberate in this warm
    instance, so refer can link the indicator page without an upstream call.

    Bounded (least recently used out) and keyed by the caller's credential
    tag, so one tenant's lookups never show in another tenant's links.
    """

    def __init__(self, size=2048):
        self.size = size
        self._items = OrderedDict()
        self._lock = threading.Lock()

    def put(self, owner, observable, iid):
        key = (owner, observable["type"], observable["value"])
        with self._lock:
            self._items[key] = iid
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self):
        with self._lock:
            self._items.clear()

    def get(self, owner, observable):
        key = (owner, observable["type"], observable["value"])
        with self._lock:
            iid = self._items.get(key)
            if iid is not None:
                self._items.move_to_end(key)
            return iid


class PulsediveProvider(Provider):
    # --- declaration --------------------------------------------------------
    name = "pulsedive"
    title = "Pulsedive"
    source = mapping.SOURCE
    supported_types = frozenset({"ip", "ipv6", "domain", "hostname", "url"})
    credential_claims = ("key",)
    claim_prompts = {"key": "Pulsedive API key"}
    capabilities = ("health", "observe", "deliberate", "refer", "respond")
    description = ("Pulsedive threat intelligence for IPs, IPv6, domains, hostnames "
                   "and URLs: risk verdicts, risk factors, threats and feeds, "
                   "search links and a scan action")
    url = "https://pulsedive.com"
    env_vars = {
        client.URL_SETTING: f"Pulsedive API base URL (default {client.DEFAULT_URL})",
        "PULSEDIVE_UI_URL": f"Pulsedive web UI for links (default {mapping.UI_URL})",
        "PULSEDIVE_SCAN_PROBE": "1 to let 'Scan with Pulsedive' probe the target "
                                "actively (default 0: passive scan)",
        "PULSEDIVE_ACTIVE_DNS": "1 to fetch linked domains of IP observables "
                                "(one extra call each, only with time to spare; "
                                "default 0)",
    }

    def __init__(self):
        self.iids = IidCache()

    # --- routes -----------------------------------------------------------------
    def health(self, ctx):
        client.health(ctx)

    def observe_one(self, ctx, observable):
        info = self._lookup(ctx, observable)
        if info is None:
            return Bundle()
        extra = self._active_dns(ctx, observable, info)
        return mapping.bundle(observable, info, ctx.entities_limit,
                              self._ui_url(ctx), extra)

    def deliberate_one(self, ctx, observable):
        info = self._lookup(ctx, observable)
        result = Bundle()
        if info is not None:
            result.add(mapping.verdict(observable, info))
        return result

    def refer(self, ctx, observables):
        ui_url = self._ui_url(ctx)
        references = []
        for observable in observables:
            references.append(mapping.search_reference(observable, ui_url))
            iid = self.iids.get(keys.credential_tag(ctx, self.name), observable)
            if iid is not None:
                references.append(mapping.detail_reference(observable, iid, ui_url))
        return references

    def respond_actions(self, ctx, observables):
        actions = []
        for observable in observables:
            human = ctim.TYPE_NAMES[observable["type"]]
            actions.append({
                # Unique per observable; trigger matches on the prefix.
                "id": (f"{SCAN_ACTION}-{quote(observable['type'], safe='')}-"
                       f"{quote(observable['value'], safe='')}"),
                "title": "Scan with Pulsedive",
                "description": f"Ask Pulsedive to scan this {human} and refresh "
                               "its risk",
                "categories": ["Pulsedive", "Scan"],
                "query-params": {"observable_type": observable["type"],
                                 "observable_value": observable["value"]},
            })
        return actions

    def trigger(self, ctx, params):
        action = params["action-id"]
        if action != SCAN_ACTION and not action.startswith(SCAN_ACTION + "-"):
            return super().trigger(ctx, params)
        kind, value = params["observable_type"], params["observable_value"].strip()
        if kind not in self.supported_types:
            raise InvalidArgumentError(
                f"Pulsedive cannot scan observables of type '{kind}'")
        probe = ctx.settings.get_bool("PULSEDIVE_SCAN_PROBE", False)
        client.scan(ctx, value, probe)

    # --- helpers ------------------------------------------------------------------
    def _lookup(self, ctx, observable):
        """The info.php object of `observable` (one call), or None."""
        info = client.info(ctx, observable["value"].strip())
        if info is not None:
            mapping.check(info)
            if info.get("iid") not in (None, ""):
                self.iids.put(keys.credential_tag(ctx, self.name), observable, info["iid"])
        return info

    def _active_dns(self, ctx, observable, info):
        """Domains linked to an IP, only when enabled and time allows."""
        if observable["type"] not in ("ip", "ipv6") or not ctx.settings.get_bool(
                "PULSEDIVE_ACTIVE_DNS", False):
            return []
        key_gate = client.gate(ctx)
        if key_gate.per_second or key_gate.blocked_for():
            return []   # a rate-limited key keeps its calls for lookups
        if ctx.remaining() < 2 * ctx.settings.http_timeout:
            return []
        try:
            return mapping.links_relations(observable, client.links(ctx, observable["value"]))
        except RelayError as error:
            log.warning("Pulsedive links lookup failed: %s", error.code)
            return []

    @staticmethod
    def _ui_url(ctx):
        return ctx.settings.get_url("PULSEDIVE_UI_URL", mapping.UI_URL)
