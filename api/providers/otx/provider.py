"""The AlienVault OTX provider: declaration and orchestration.

Per observable: one `general` call (pulses, validation, pulse count), then
for at most OTX_PULSE_LOOKUPS of its newest pulses modified since their
creation, at most OTX_PULSE_PAGES pages of that pulse's indicator list, to
date the observable in the pulse.
Page reads run side by side on one pool per request, are shared (a pulse
held by several observables is read once), stop at the request deadline,
and never cost a pulse: without its row the sighting keeps the pulse's date.
"""
import logging
import threading
from concurrent.futures import Future, wait

from api import ctim, engine
from api.bundle import Bundle
from api.errors import RelayError
from api.providers.base import Provider, refer_item
from api.providers.otx import client, mapping

log = logging.getLogger(__name__)

# Seconds kept back from the request deadline so an observable's general data
# is returned even when its pulse lookups are still running.
LOOKUP_RESERVE = 0.25


class OtxProvider(Provider):
    name = "otx"
    title = "AlienVault OTX"
    source = mapping.SOURCE
    supported_types = frozenset({"ip", "ipv6", "domain", "hostname", "url", "md5", "sha1",
                                 "sha256", "email"})
    credential_claims = ("key",)
    claim_prompts = {"key": "AlienVault OTX API key"}
    capabilities = ("health", "observe", "deliberate", "refer")
    max_entities_limit = 1000
    description = ("AlienVault OTX pulses holding the observables: verdicts, judgements, "
                   "indicators, sightings and relationships.")
    url = "https://otx.alienvault.com/"
    value_in_path = True
    env_vars = {
        "OTX_API_URL": "OTX base URL (default https://otx.alienvault.com)",
        "OTX_MALICIOUS_PULSES": "pulses that make an observable Malicious (default 2)",
        "OTX_SUSPICIOUS_PULSES": "pulses that make an observable Suspicious (default 1)",
        "OTX_CLEAN_VALIDATIONS": "OTX validation sources (whitelists...) that make an "
                                 "observable Clean (default 2)",
        "OTX_PULSE_LOOKUPS": "pulses per observable whose indicator list is read to date "
                             "the observable (default 3, 0 = none, max 20)",
        "OTX_PULSE_PAGES": "pages read per looked-up pulse (default 1, max 10)",
        "OTX_PULSE_PAGE_SIZE": "indicators per page (default 1000, max 10000)",
    }

    # --- settings ----------------------------------------------------------------
    @staticmethod
    def thresholds(ctx):
        get = ctx.settings.get_int
        return mapping.Thresholds(
            malicious=get("OTX_MALICIOUS_PULSES", 2),
            suspicious=get("OTX_SUSPICIOUS_PULSES", 1),
            clean_validations=get("OTX_CLEAN_VALIDATIONS", 2))

    # --- enrich ------------------------------------------------------------------
    def observe(self, ctx, observables):
        lookups = PulseLookups(ctx)
        try:
            return self._per_observable(
                ctx, observables, lambda c, obs: self._observe_one(c, obs, lookups))
        finally:
            lookups.close()

    def observe_one(self, ctx, observable):
        lookups = PulseLookups(ctx)
        try:
            return self._observe_one(ctx, observable, lookups)
        finally:
            lookups.close()

    def _observe_one(self, ctx, observable, lookups):
        bundle = Bundle()
        if observable["type"] not in client.SECTION_TYPES:
            return bundle  # e-mail: OTX has no indicator API for it (refer only)
        general = self._general(ctx, observable)
        if general is None:
            return bundle
        base = client.base_url(ctx)
        judgement = mapping.judgement(observable, general, base, self.thresholds(ctx))
        if judgement is not None:
            bundle.add(judgement)
            bundle.add(mapping.verdict(judgement))
        chosen = mapping.pulses(general)[:ctx.entities_limit]
        entries = lookups.entries(observable, chosen)
        for pulse in chosen:
            bundle.extend(mapping.pulse_entities(observable, pulse, base,
                                                 entries.get(pulse["id"])))
        return bundle

    @staticmethod
    def _general(ctx, observable):
        """The observable's `general` section, its shape checked, or None."""
        general = client.general(ctx, observable["type"], observable["value"])
        return None if general is None else mapping.check_general(general)

    def deliberate_one(self, ctx, observable):
        # The verdict needs the general section only: no pulse lookups.
        bundle = Bundle()
        if observable["type"] not in client.SECTION_TYPES:
            return bundle
        general = self._general(ctx, observable)
        judgement = mapping.judgement(observable, general, client.base_url(ctx),
                                      self.thresholds(ctx))
        if judgement is not None:
            bundle.add(mapping.verdict(judgement, with_reference=False))
        return bundle

    # --- pivots --------------------------------------------------------------------
    def refer(self, ctx, observables):
        base = client.base_url(ctx)
        links = []
        for obs in observables:
            name = ctim.TYPE_NAMES[obs["type"]]
            links.append(refer_item(
                "avotx", "search", obs, f"Search for this {name}",
                f"Lookup this {name} on AlienVault OTX", mapping.indicator_page(base, obs),
                ["Search", "AlienVault OTX"]))
        return links

    def health(self, ctx):
        client.user_me(ctx)


class PulseLookups:
    """Pulse indicator pages read for one request, each at most once.

    Page reads run on the engine's process-wide threads (at most
    RELAY_CONCURRENCY at once per request); an observable waits for its
    pulses' pages in its own thread, so observables sharing a pulse share
    its pages.
    """

    def __init__(self, ctx):
        self.ctx = ctx
        get = ctx.settings.get_int
        self.per_observable = get("OTX_PULSE_LOOKUPS", 3, minimum=0, maximum=20)
        self.max_pages = get("OTX_PULSE_PAGES", 1, maximum=10)
        self.page_size = get("OTX_PULSE_PAGE_SIZE", 1000, maximum=10000)
        self._pages = {}
        self._slots = threading.BoundedSemaphore(ctx.settings.concurrency)
        self._closed = False
        self._lock = threading.Lock()

    def close(self):
        """Stop reading: late pages end by the transport's deadline."""
        with self._lock:
            self._closed = True
            pages = list(self._pages.values())
        for future in pages:
            future.cancel()  # only pages no thread has started yet

    def entries(self, observable, pulses):
        """{pulse id: the observable's row} for the first pulses it can look up."""
        worth = [p for p in pulses if mapping.modified_since_created(p)]
        pending = {pulse["id"]: 1 for pulse in worth[:self.per_observable]}
        found = {}
        while pending:
            budget = self.ctx.remaining() - LOOKUP_RESERVE
            futures = {pid: self._page(pid, number) for pid, number in pending.items()}
            futures = {pid: f for pid, f in futures.items() if f is not None}
            if budget <= 0 or not futures:
                break
            wait(futures.values(), timeout=budget)
            later = {}
            for pulse_id, future in futures.items():
                page = self._result(pulse_id, future)
                if page is None:
                    continue  # not read (yet): the pulse keeps its own dates
                index, more = page
                entry = mapping.lookup(index, observable)
                if entry is not None:
                    found[pulse_id] = entry
                elif more and pending[pulse_id] < self.max_pages:
                    later[pulse_id] = pending[pulse_id] + 1
            pending = later
        return found

    def _page(self, pulse_id, number):
        """The future of page `number` of a pulse, submitted on first use."""
        key = (pulse_id, number)
        with self._lock:
            if self._closed:
                return None
            future = self._pages.get(key)
            if future is not None:
                return future
            future = self._pages[key] = Future()
        # Submitting may start a thread: done outside the lock.
        engine.executor().submit(self._fill, future, pulse_id, number)
        return future

    def _fill(self, future, pulse_id, number):
        with self._slots:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(self._read(pulse_id, number))
            except Exception as error:  # kept for the waiters; see _result
                future.set_exception(error)

    def _read(self, pulse_id, number):
        page = client.pulse_indicators(self.ctx, pulse_id, number, self.page_size)
        return mapping.index_page(page), bool(page and page.get("next"))

    @staticmethod
    def _result(pulse_id, future):
        if not future.done() or future.cancelled():
            return None
        error = future.exception()
        if error is None:
            return future.result()
        if isinstance(error, RelayError):
            log.info("OTX pulse %s indicators not read: %s", pulse_id, error.code)
        else:
            log.error("OTX pulse %s indicators: unexpected error", pulse_id, exc_info=error)
        return None
