"""The MISP provider: declaration and orchestration.

All observables of a request go to MISP in ONE batched
`events/restSearch` (value list, `limit`/`page`) and, with warninglists
marked, ONE `warninglists/checkValue` asked at the same time: at most two
calls per observe or deliberate whatever the number of observables (more
only if MISP_MAX_PAGES is raised above 2).
"""
from urllib.parse import quote

from api import cache, ctim, engine
from api.errors import InvalidArgumentError, RelayError, UnexpectedResponseError
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
MAX_LOOKBACK_DAYS = 36500
# Settings a module may set by a JWT claim of the same name (never where MISP is).
MODULE_SETTINGS = (
    "MISP_IDS_ONLY", "MISP_PUBLISHED_ONLY", "MISP_LOOKBACK_DAYS", "MISP_EXCLUDED_ORGS",
    "MISP_TRUSTED_ORGS", "MISP_MALICIOUS_TAGS", "MISP_SUSPICIOUS_TAGS", "MISP_BENIGN_TAGS",
    "MISP_WARNINGLISTS", "MISP_ENFORCE_WARNINGLIST", "MISP_DECAYING_MODEL",
    "MISP_SIGHTING_SOURCE",
)


def policy(settings):
    """The evidence and judgement rules from the MISP_* settings (strictly read)."""
    mode = settings.setting_choice("MISP_WARNINGLISTS", None, mapping.WARNINGLIST_MODES)
    if mode is None:   # MISP_ENFORCE_WARNINGLIST=true is the older name of `drop`
        mode = "drop" if settings.setting_bool("MISP_ENFORCE_WARNINGLIST", False) else "mark"

    def names(name, lower=False):
        return frozenset(v.lower() if lower else v for v in settings.setting_list(name))

    return mapping.Policy(
        ids_only=settings.setting_bool("MISP_IDS_ONLY", False),
        published_only=settings.setting_bool("MISP_PUBLISHED_ONLY", False),
        lookback_days=settings.setting_int("MISP_LOOKBACK_DAYS", None, minimum=1,
                                           maximum=MAX_LOOKBACK_DAYS),
        excluded_orgs=names("MISP_EXCLUDED_ORGS", lower=True),
        trusted_orgs=names("MISP_TRUSTED_ORGS", lower=True),
        malicious_tags=names("MISP_MALICIOUS_TAGS"),
        suspicious_tags=names("MISP_SUSPICIOUS_TAGS"),
        benign_tags=names("MISP_BENIGN_TAGS"),
        warninglists=mode,
        decaying_model=settings.setting_int("MISP_DECAYING_MODEL", None, minimum=1))


def search_filters(rules):
    """The restSearch filters for `rules` (the relay filters again on the answer)."""
    filters = {"includeSightings": 1, "includeEventTags": 1,
               "enforceWarninglist": 1 if rules.warninglists == "drop" else 0}
    if rules.warninglists == "mark":
        filters["includeWarninglistHits"] = 1
    if rules.ids_only:
        filters["to_ids"] = 1
    if rules.published_only:
        filters["published"] = 1
    if rules.lookback_days:
        filters["attribute_timestamp"] = f"{rules.lookback_days}d"
    if rules.decaying_model:
        filters.update(includeDecayScore=1, decayingModel=[rules.decaying_model])
    return filters


def literal_problem(value):
    """Why MISP cannot search `value` literally, or None.

    restSearch reads a leading `!` as NOT and a leading or trailing `%` as
    LIKE, and has no escape for either: such values are refused, never sent.
    """
    if value.startswith("!"):
        return (f"MISP reads a leading '!' as NOT and cannot search '{ctim.clip(value, 80)}' "
                "literally; it was not searched")
    if value.startswith("%") or value.endswith("%"):
        return (f"MISP reads a leading or trailing '%' as a wildcard and cannot search "
                f"'{ctim.clip(value, 80)}' literally; it was not searched")
    return None


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
        "MISP_MAX_PAGES": "MISP calls per request (default 2): restSearch pages plus the "
                          "warninglist check",
        "MISP_IDS_ONLY": "`true`: only attributes flagged for IDS (`to_ids`) are evidence",
        "MISP_PUBLISHED_ONLY": "`true`: only published events are evidence",
        "MISP_LOOKBACK_DAYS": "only attributes changed in the last N days are evidence "
                              "(default: all time)",
        "MISP_EXCLUDED_ORGS": "creator orgs (names or uuids, comma-separated) whose events "
                              "are ignored",
        "MISP_TRUSTED_ORGS": "creator orgs whose events judge; others give sightings and "
                             "indicators only (default: all)",
        "MISP_MALICIOUS_TAGS": "tags (comma-separated) that make a judgement Malicious",
        "MISP_SUSPICIOUS_TAGS": "tags (comma-separated) that make a judgement Suspicious",
        "MISP_BENIGN_TAGS": "tags (comma-separated) that make a judgement Clean",
        "MISP_WARNINGLISTS": "`mark` (default: Common, named list), `drop` (MISP leaves "
                             "listed values out) or `off`",
        "MISP_ENFORCE_WARNINGLIST": "older name: `true` is MISP_WARNINGLISTS=drop",
        "MISP_DECAYING_MODEL": "id of a MISP decaying model: its score sets the confidence, "
                               "decayed attributes give Unknown",
        "MISP_SIGHTING_SOURCE": "`source` of sightings added by respond (default `Cisco XDR`)",
    }
    module_settings = MODULE_SETTINGS

    def accepts(self, observable):
        # MISP answers every event for a blank value.
        return bool(observable["value"].strip())

    # --- enrich ---------------------------------------------------------------
    def events_by_value(self, ctx, values, filters, pages):
        """`search_by_value`, through the answer cache: only values it does not
        hold are searched (one batched restSearch). The kind of lookup names
        the filters, pages and entities limit the hits depend on."""
        kind = "events:" + cache.keys.digest(filters, pages, ctx.entities_limit)
        return cache.fetch_many(
            ctx, "misp", kind, values,
            lambda missing: self.search_by_value(ctx, missing, filters, pages),
            scope=(client.base_url(ctx),))

    @staticmethod
    def warninglists_by_value(ctx, values):
        """{value: {list name: id}} from warninglists/checkValue, cached per value."""
        def load(missing):
            listed = client.check_warninglists(ctx, missing)
            return {v: listed.get(v) or listed.get(v.lower()) or {} for v in missing}, []
        return cache.fetch_many(ctx, "misp", "warninglists", values, load,
                                scope=(client.base_url(ctx),))[0]

    def search_by_value(self, ctx, values, filters, pages):
        """Search `values` in MISP: ({value: hits}, errors), at most `pages` calls.

        The one step that asks MISP for events (a cache can wrap it: hits are
        plain data). A failed page after the first keeps what came before.
        """
        page_size = min(ctx.entities_limit * len(values), MAX_PAGE_SIZE)
        index, problems, errors = {}, [], []
        for page in range(1, pages + 1):
            try:
                events, bad = client.search_events(ctx, filters, values, page_size, page)
            except RelayError as error:
                if page == 1:
                    raise
                errors.append(error)
                break
            problems.extend(bad)
            mapping.index_events(events, index)
            if len(events) + len(bad) < page_size or all(
                    len(mapping.hits_for(index, v)) >= ctx.entities_limit for v in values):
                break
        if problems:
            errors.append(UnexpectedResponseError(
                f"MISP answered {len(problems)} malformed event(s), left out: "
                f"{ctim.clip(problems[0], 200)}"))
        return {v: mapping.hits_for(index, v) for v in values}, errors

    def _gather(self, ctx, observables):
        """(policy, hits per value, warninglists per value, outcome with errors)."""
        rules = policy(ctx.settings)
        outcome = Outcome()
        values = []
        for obs in observables:
            problem = literal_problem(obs["value"].strip())
            if problem:
                error = InvalidArgumentError(problem)
                error.subject = self.label(obs)
                outcome.errors.append(error)
            else:
                values.append(obs["value"].strip())
        values = list(dict.fromkeys(values))
        if not values:
            return rules, {}, {}, outcome
        pages = max(ctx.settings.get_int("MISP_MAX_PAGES", 2, maximum=10), 1)
        tasks = []
        if rules.warninglists == "mark":
            pages = max(pages - 1, 1)
            tasks.append(("warninglists", lambda: self.warninglists_by_value(ctx, values)))
        tasks.insert(0, ("events", lambda: self.events_by_value(
            ctx, values, search_filters(rules), pages)))
        hits, lists = {}, {}
        for label, result, error in engine.run(ctx, tasks):
            if error is not None:
                # both calls failing alike (MISP down, slow) is one failure to report
                if error.code not in {e.code for e in outcome.errors}:
                    outcome.errors.append(error)
            elif label == "events":
                hits, errors = result
                outcome.errors.extend(errors)
            else:
                lists = result
        return rules, hits, lists, outcome

    @staticmethod
    def _lists(lists, value):
        return lists.get(value) or lists.get(value.lower()) or {}

    def observe(self, ctx, observables):
        base = client.base_url(ctx)
        rules, hits, lists, outcome = self._gather(ctx, observables)
        now = ctim.utc_now()
        for obs in observables:
            value = obs["value"].strip()
            if value in hits or self._lists(lists, value):
                self._map(outcome, obs, lambda: mapping.observe_bundle(
                    obs, hits.get(value, ()), base, ctx.entities_limit, rules,
                    self._lists(lists, value), now))
        return outcome

    def deliberate(self, ctx, observables):
        client.base_url(ctx)
        rules, hits, lists, outcome = self._gather(ctx, observables)
        now = ctim.utc_now()
        for obs in observables:
            value = obs["value"].strip()
            if value in hits or self._lists(lists, value):
                self._map(outcome, obs, lambda: mapping.deliberate_bundle(
                    obs, hits.get(value, ()), rules, self._lists(lists, value), now))
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
        value = params["observable_value"].strip()
        problem = literal_problem(value)
        if problem:
            raise InvalidArgumentError(problem)
        source = ctx.settings.get_str("MISP_SIGHTING_SOURCE", "Cisco XDR")
        client.add_sighting(ctx, value, action[1], source)
        cache.invalidate(ctx, "misp", value)   # the next observe shows the sighting

    def health(self, ctx):
        client.version(ctx)
