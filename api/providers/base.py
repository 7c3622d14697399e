"""What a provider declares and implements.

A provider package subclasses `Provider`, fills in the declaration block
(name, title, types, credential claims, capabilities) and implements the
routes it supports. Routes it does not support answer the contract's empty
result (`supports()` is false), never an error.
"""
from urllib.parse import quote

from api import engine
from api.bundle import Bundle
from api.errors import InvalidArgumentError


def refer_item(module, kind, observable, title, description, url, categories):
    """A refer link with the contract's id `ref-<module>-<kind>-<type>-<value>`."""
    return {
        "id": (f"ref-{module}-{kind}-{quote(observable['type'], safe='')}-"
               f"{quote(observable['value'], safe='')}"),
        "title": title,
        "description": description,
        "url": url,
        "categories": list(categories),
    }


class Outcome:
    """Entities found plus errors for what failed; both may be non-empty."""

    def __init__(self, bundle=None, errors=None):
        self.bundle = bundle or Bundle()
        self.errors = list(errors or [])


class Provider:
    # --- declaration --------------------------------------------------------
    name = ""                 # route prefix, e.g. "misp"
    title = ""                # human name, e.g. "MISP"
    source = ""               # CTIM `source` of the entities
    supported_types = frozenset()
    credential_claims = ("key",)        # JWT claims that must be present
    claim_prompts = {"key": "API key"}  # `jwt dev` prompts, claim -> label
    capabilities = ("health", "observe", "deliberate", "refer")
    max_entities_limit = None           # cap on CTR_ENTITIES_LIMIT, if any
    description = ""                    # one line for module_type.json
    url = ""                            # provider home page
    env_vars = {}                       # provider settings: name -> description
    module_settings = ()                # env_vars a module's JWT claim may override
    value_in_path = False               # the value is a path segment of upstream URLs

    def supports(self, capability):
        return capability in self.capabilities

    def accepts(self, observable):
        """Hook: False drops an observable of a supported type.

        A blank value names nothing; where the value is a URL path segment
        (`value_in_path`), "." and ".." would be resolved away and another
        endpoint would answer.
        """
        value = observable["value"].strip()
        return bool(value) and not (self.value_in_path and value in (".", ".."))

    def label(self, observable):
        return f"{observable['type']} {observable['value']}"

    # --- routes ---------------------------------------------------------------
    def health(self, ctx):
        raise NotImplementedError

    def observe(self, ctx, observables):
        return self._per_observable(ctx, observables, self.observe_one)

    def deliberate(self, ctx, observables):
        outcome = self._per_observable(ctx, observables, self.deliberate_one)
        outcome.bundle = outcome.bundle.only("verdicts")
        return outcome

    def refer(self, ctx, observables):
        return []

    def respond_actions(self, ctx, observables):
        return []

    def trigger(self, ctx, params):
        raise InvalidArgumentError(
            f"Unknown action '{params.get('action-id')}' for {self.title}")

    # --- per-observable providers implement these -----------------------------
    def observe_one(self, ctx, observable):
        """A Bundle for one observable."""
        raise NotImplementedError

    def deliberate_one(self, ctx, observable):
        """A Bundle holding at most one verdict; defaults to observe's."""
        return self.observe_one(ctx, observable).only("verdicts")

    def _per_observable(self, ctx, observables, func):
        tasks = [(self.label(obs), (lambda obs=obs: func(ctx, obs)))
                 for obs in observables]
        outcome = Outcome()
        for label, bundle, error in engine.run(ctx, tasks):
            if error is not None:
                error.subject = label
                outcome.errors.append(error)
            elif bundle is not None:
                outcome.bundle.merge(bundle)
        return outcome
