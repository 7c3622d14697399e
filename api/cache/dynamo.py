"""The shared tier: answers and rate-limit state in one DynamoDB table.

Opt-in with RELAY_CACHE_TABLE. Every Lambda container of the deployment
reads and writes the same items, so an answer fetched by one container is a
hit in the others, and a key closed after a 429 stays closed everywhere.

Table: partition key `pk` (S), sort key `sk` (S), TTL attribute `expires`
(epoch seconds). Items:
- answers: pk `cache#<provider>#<sha256(value)>`, sk `<credential tag>#<kind>`,
  `body` (B, the JSON answer zlib-compressed), `stored` (N, epoch seconds);
- rate state: pk `rate#<provider>#<credential tag>`, sk `rate`,
  `closed_until` (N), `message` (S), `per_second` (N), `paced_at` (N).
A credential tag is an HMAC-SHA256 of the `key` claim with SECRET_KEY
(api.cache.keys): no credential is stored in clear.

boto3 comes with the Lambda runtime (the zip leaves it out) and is imported
on first use. The table is best effort: a failed or slow call (timeouts
below) makes the relay skip it for DOWN_FOR seconds and go on with the
in-process tier; the first failure in a container logs one warning, and no
failure ever reaches XDR.
"""
import logging
import threading
import time
import zlib

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 0.5    # seconds to open a connection to DynamoDB
READ_TIMEOUT = 0.5       # seconds to wait for one DynamoDB answer
DOWN_FOR = 30.0          # seconds the table is skipped after a failure
MIN_REMAINING = 1.0      # the table is skipped when less of the deadline is left
MAX_BODY = 350 * 1024    # compressed answers above this stay in-process only
RATE_SORT = "rate"

_tiers = {}
_lock = threading.Lock()
_warned = []             # one warning per container


def tier(ctx, name):
    """The `Tier` of table `name` (one per container and table)."""
    found = _tiers.get(name)
    if found is None:
        with _lock:
            found = _tiers.setdefault(name, Tier(name))
    return found


def reset():
    """Forget clients, outages and the warning (tests)."""
    with _lock:
        _tiers.clear()
        _warned.clear()


def _number(item, name, default=0.0):
    try:
        return float(item[name]["N"])
    except (KeyError, TypeError, ValueError):
        return default


class Tier:
    def __init__(self, name):
        self.name = name
        self._client = None
        self._down_until = 0.0
        self._lock = threading.Lock()

    # --- plumbing -------------------------------------------------------------
    def _dynamodb(self):
        with self._lock:
            if self._client is None:
                import boto3   # provided by the Lambda runtime, not in the zip
                from botocore.config import Config

                self._client = boto3.client("dynamodb", config=Config(
                    connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT,
                    retries={"max_attempts": 1, "mode": "standard"},
                    # one connection per concurrent lookup (RELAY_CONCURRENCY)
                    max_pool_connections=64))
            return self._client

    def _call(self, ctx, operation, table=True, **kwargs):
        """The answer of one DynamoDB call, or None when the table is not usable;
        `table`: the call names the table as TableName (BatchGetItem does not)."""
        if time.monotonic() < self._down_until:
            return None
        if ctx is not None and ctx.remaining() < MIN_REMAINING:
            return None
        try:
            if table:
                kwargs["TableName"] = self.name
            return getattr(self._dynamodb(), operation)(**kwargs)
        except Exception as error:  # any failure: go on without the table
            self._down_until = time.monotonic() + DOWN_FOR
            with _lock:
                first = not _warned
                _warned.append(1)
            if first:
                log.warning("DynamoDB cache table %s is not usable (%s); going on with the "
                            "in-process cache only", self.name, type(error).__name__)
            return None

    # --- answers --------------------------------------------------------------------
    def get(self, ctx, key, not_before):
        """(JSON body, stored_at) of `key` if stored at or after `not_before`."""
        answer = self._call(ctx, "get_item", Key={"pk": {"S": key.partition},
                                                  "sk": {"S": key.sort}})
        item = (answer or {}).get("Item")
        return self._read(item, not_before) if item else None

    @staticmethod
    def _read(item, not_before):
        stored = _number(item, "stored")
        if stored < not_before:
            return None
        try:
            return zlib.decompress(item["body"]["B"]), stored
        except (KeyError, TypeError, zlib.error):
            return None

    def get_many(self, ctx, keys, not_before):
        """{key: (JSON body, stored_at)} of those `keys` the table holds fresh
        (BatchGetItem, 100 keys a call; unprocessed keys count as misses)."""
        by_id = {(key.partition, key.sort): key for key in keys}
        ids = list(by_id)
        found = {}
        for start in range(0, len(ids), 100):
            request = {self.name: {"Keys": [{"pk": {"S": pk}, "sk": {"S": sk}}
                                            for pk, sk in ids[start:start + 100]]}}
            answer = self._call(ctx, "batch_get_item", RequestItems=request, table=False)
            for item in (answer or {}).get("Responses", {}).get(self.name, []):
                key = by_id.get((item["pk"]["S"], item["sk"]["S"]))
                read = self._read(item, not_before)
                if key is not None and read is not None:
                    found[key] = read
        return found

    def put(self, ctx, key, body, stored_at, ttl):
        data = zlib.compress(body)
        if len(data) > MAX_BODY:
            return
        self._call(ctx, "put_item", Item={
            "pk": {"S": key.partition}, "sk": {"S": key.sort}, "body": {"B": data},
            "stored": {"N": repr(stored_at)},
            "expires": {"N": str(int(stored_at + ttl) + 1)}})

    def drop(self, ctx, key):
        """Delete every item of `key`'s partition (all credentials, all kinds)."""
        answer = self._call(ctx, "query", KeyConditionExpression="pk = :pk",
                            ExpressionAttributeValues={":pk": {"S": key.partition}},
                            ProjectionExpression="pk, sk")
        for item in (answer or {}).get("Items", []):
            self._call(ctx, "delete_item", Key={"pk": item["pk"], "sk": item["sk"]})

    # --- rate-limit state -----------------------------------------------------------
    def get_rate(self, ctx, partition):
        """{"closed_for", "message", "per_second", "pace_age"} of a credential, or {}."""
        answer = self._call(ctx, "get_item", Key={"pk": {"S": partition},
                                                  "sk": {"S": RATE_SORT}})
        item = (answer or {}).get("Item")
        if not item:
            return {}
        now = time.time()
        return {"closed_for": max(_number(item, "closed_until") - now, 0.0),
                "message": item.get("message", {}).get("S", ""),
                "per_second": int(_number(item, "per_second")) or None,
                "pace_age": now - _number(item, "paced_at")}

    def put_rate(self, partition, closed_for=None, message="", per_second=None,
                 keep_for=3600.0):
        """Record a closure (`closed_for` seconds from now) or a learned pace."""
        now = time.time()
        fields = {"expires": {"N": str(int(now + keep_for) + 60)}}
        if closed_for is not None:
            fields.update(closed_until={"N": repr(now + closed_for)}, message={"S": message})
        if per_second is not None:
            fields.update(per_second={"N": str(per_second)}, paced_at={"N": repr(now)})
        # Attribute names go through placeholders (some are reserved words).
        self._call(None, "update_item", Key={"pk": {"S": partition}, "sk": {"S": RATE_SORT}},
                   UpdateExpression="SET " + ", ".join(f"#{n} = :{n}" for n in fields),
                   ExpressionAttributeNames={f"#{n}": n for n in fields},
                   ExpressionAttributeValues={f":{n}": v for n, v in fields.items()})
