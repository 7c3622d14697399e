"""The shared tier in DynamoDB (RELAY_CACHE_TABLE). Placeholder."""


def tier(ctx, name):
    return None


def reset():
    pass
