"""The MISP provider: declaration and orchestration.

All observables of a request go to MISP in ONE batched
`events/restSearch` (value list, `limit`/`page`), at most MISP_MAX_PAGES
pages, so the call count does not grow with the number of observables.
"""
from urllib.parse import quote

from api import ctim
from api.errors import RelayError
from api.providers.base import Outcome, Provider, refer_item
from api.providers.misp import client, mapping

ACTIONS = {
    "misp-add-sighting": ("Add sighting in MISP", mapping.SIGHTING_TYPE,
                          "Record a sighting of this {name} in MISP"),
    "misp-report-false-positive": ("Report false positive in MISP",
                                   mapping.FALSE_POSITIVE_TYPE,
                                   "Record a false-positive sighting of this {name} in MISP"),
}
MAX_PAGE_SIZE = 1000


class MispProvider(Provider):
    name = "misp"
    title = "MISP"
    source = mapping.SOURCE
    supported_types = frozenset({"ip", "ipv6", "domain", "hostname", "url", "md5", "sha1",
                                 "sha256", "email"})
    credential_claims = ("key",)
    claim_prompts = {"key": "MISP automation (auth) key"}
    capabilities = ("health", "observe", "deliberate", "refer", "respond")
    description = ("Events of your MISP instance matching the observables: verdicts, "
                   "judgements, indicators, sightings and relationships.")
    url = "https://www.misp-project.org/"
    env_vars = {
        "API_URL": "base URL of your MISP instance (required), e.g. https://misp.example.org",
        "MISP_CA_BUNDLE": "path of a CA bundle inside the package, for a MISP with a "
                          "private CA (default: the public CAs)",
        "MISP_VERIFY_TLS": "`false` turns TLS verification off (default `true`; prefer "
                           "MISP_CA_BUNDLE)",
        "MISP_MAX_PAGES": "restSearch pages fetched per request (default 2)",
        "MISP_ENFORCE_WARNINGLIST": "`true` asks MISP to drop warninglist hits (default `false`)",
        "MISP_PUBLISHED_ONLY": "`true` searches published events only (default `false`)",
        "MISP_SIGHTING_SOURCE": "`source` of sightings added by respond (default `Cisco XDR`)",
    }

    def accepts(self, observable):
        # MISP answers every event for a blank value.
        return bool(observable["value"].strip())

    # --- enrich ---------------------------------------------------------------
    def _events(self, ctx, observables, sightings):
        """Events matching any observable, plus the error that cut paging short."""
        values = list(dict.fromkeys(obs["value"].strip() for obs in observables))
        page_size = min(ctx.entities_limit * len(values), MAX_PAGE_SIZE)
        max_pages = ctx.settings.get_int("MISP_MAX_PAGES", 2, maximum=10)
        events = []
        for page in range(1, max_pages + 1):
            try:
                batch = client.search_events(ctx, values, page_size, page, sightings)
            except RelayError as error:
                return events, error
            events.extend(batch)
            if len(batch) < page_size or self._saturated(ctx, observables, events):
                break
        return events, None

    @staticmethod
    def _saturated(ctx, observables, events):
        return all(sum(1 for e in events if mapping.matching_attributes(e, obs))
                   >= ctx.entities_limit for obs in observables)

    def observe(self, ctx, observables):
        base = client.base_url(ctx)
        events, error = self._events(ctx, observables, sightings=True)
        outcome = Outcome(errors=[error] if error else [])
        now = ctim.utc_now()
        for obs in observables:
            self._map(outcome, obs, lambda: mapping.observe_bundle(
                obs, events, base, ctx.entities_limit, now))
        return outcome

    def deliberate(self, ctx, observables):
        client.base_url(ctx)
        events, error = self._events(ctx, observables, sightings=False)
        outcome = Outcome(errors=[error] if error else [])
        now = ctim.utc_now()
        for obs in observables:
            self._map(outcome, obs, lambda: mapping.deliberate_bundle(obs, events, now))
        return outcome

    def _map(self, outcome, observable, build):
        try:
            outcome.bundle.merge(build())
        except RelayError as error:
            error.subject = self.label(observable)
            outcome.errors.append(error)

    # --- pivots and actions -----------------------------------------------------
    def refer(self, ctx, observables):
        base = client.base_url(ctx)
        links = []
        for obs in observables:
            name = ctim.TYPE_NAMES[obs["type"]]
            url = f"{base}/events/index/searchall:{quote(obs['value'], safe='')}"
            links.append(refer_item(
                "misp", "search", obs, f"Search events with this {name}",
                f"Lookup events with this {name} on MISP", url, ["Search", "MISP"]))
        return links

    def respond_actions(self, ctx, observables):
        actions = []
        for obs in observables:
            name = ctim.TYPE_NAMES[obs["type"]]
            for action_id, (title, _, description) in ACTIONS.items():
                actions.append({
                    "id": action_id,
                    "title": title,
                    "description": description.format(name=name),
                    "categories": ["MISP"],
                    "query-params": {"observable_type": obs["type"],
                                     "observable_value": obs["value"]},
                })
        return actions

    def trigger(self, ctx, params):
        action = ACTIONS.get(params["action-id"])
        if action is None or params["observable_type"] not in self.supported_types:
            return super().trigger(ctx, params)
        source = ctx.settings.get_str("MISP_SIGHTING_SOURCE", "Cisco XDR")
        client.add_sighting(ctx, params["observable_value"].strip(), action[1], source)

    def health(self, ctx):
        client.version(ctx)
