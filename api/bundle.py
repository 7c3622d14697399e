"""Accumulates CTIM entities into the observe/deliberate `data` object."""

PLURALS = ("verdicts", "judgements", "indicators", "sightings", "relationships")


class Bundle:
    """Entities of one response, keyed by plural type, unique by id.

    An entity seen twice (e.g. an indicator shared by two observables) is kept
    once; a second verdict for the same observable is ignored.
    """

    def __init__(self):
        self._docs = {}
        self._ids = set()
        self._verdict_keys = set()

    def add(self, doc):
        key = doc["type"] + "s"
        if key == "verdicts":
            marker = (doc["observable"]["type"], doc["observable"]["value"])
            if marker in self._verdict_keys:
                return
            self._verdict_keys.add(marker)
        else:
            if doc["id"] in self._ids:
                return
            self._ids.add(doc["id"])
        self._docs.setdefault(key, []).append(doc)

    def extend(self, docs):
        for doc in docs:
            self.add(doc)

    def merge(self, other):
        for docs in other._docs.values():
            self.extend(docs)

    def docs(self, key):
        return list(self._docs.get(key, ()))

    def only(self, *keys):
        """A new bundle with just the entity lists named by `keys`."""
        result = Bundle()
        for key in keys:
            result.extend(self._docs.get(key, ()))
        return result

    def json(self):
        return {key: {"count": len(docs), "docs": docs}
                for key, docs in self._docs.items() if docs}

    def __bool__(self):
        return any(self._docs.values())
