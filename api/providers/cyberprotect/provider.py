"""The Threatscore | Cyberprotect provider: declaration and orchestration.

One `GET /api/score/<value>` per observable, run concurrently by the engine;
refer links are built locally. Threatscore needs no credential, but the
routes still require a valid relay JWT (payload `{}` is enough), so the
Lambda is not an open proxy.
"""
from urllib.parse import quote, urlencode

from api import ctim
from api.bundle import Bundle
from api.providers.base import Provider, refer_item
from api.providers.cyberprotect import client, mapping

UI_URL_VAR = "CYBERPROTECT_UI_URL"
DEFAULT_UI_URL = "https://threatscore.cyberprotect.cloud"


class CyberprotectProvider(Provider):
    name = "cyberprotect"
    title = client.TITLE
    source = mapping.SOURCE
    supported_types = frozenset({"ip", "ipv6", "domain"})
    credential_claims = ()
    claim_prompts = {}
    capabilities = ("health", "observe", "deliberate", "refer")
    description = ("Threatscore gives a computed score about a level of threat for any "
                   "(known) observables: one verdict per observable and a judgement per "
                   "scoring engine.")
    url = "https://threatscore.cyberprotect.cloud"
    value_in_path = True
    env_vars = {
        client.API_URL_VAR: f"Threatscore API base URL (default {client.DEFAULT_API_URL})",
        UI_URL_VAR: "Threatscore web UI base URL for refer links and judgement "
                    f"`source_uri` (default {DEFAULT_UI_URL})",
    }

    def search_url(self, ctx, value):
        """The Threatscore search page of `value`."""
        base = ctx.settings.get_url(UI_URL_VAR, DEFAULT_UI_URL)
        return f"{base}/search?{urlencode({'query': value}, quote_via=quote)}"

    def _bundle(self, ctx, observable, judgements):
        document = client.fetch_score(ctx, observable["value"])
        bundle = Bundle()
        if document is not None:
            bundle.extend(mapping.map_score(
                observable, document, self.search_url(ctx, observable["value"]),
                ctx.entities_limit, judgements=judgements))
        return bundle

    def observe_one(self, ctx, observable):
        return self._bundle(ctx, observable, judgements=True)

    def deliberate_one(self, ctx, observable):
        # Without judgements in the answer, the verdict names none.
        return self._bundle(ctx, observable, judgements=False)

    def refer(self, ctx, observables):
        links = []
        for obs in observables:
            name = ctim.TYPE_NAMES[obs["type"]]
            links.append(refer_item(
                "cyberprotect", "search", obs, f"Search for this {name}",
                f"Lookup this {name} on {self.title}", self.search_url(ctx, obs["value"]),
                ["Search", self.title]))
        return links

    def health(self, ctx):
        # Any readable answer proves the API works; since 2021 the probe IP is
        # answered with 404 "Observable not found", which counts as success.
        client.score(ctx, client.HEALTH_VALUE)
