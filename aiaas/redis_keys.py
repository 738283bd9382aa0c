"""Redis key names, spelled one way: parts joined by ":".

`tenant_key("limits", 7, "k9", "rpm")` is `limits:{t7}:k9:rpm`: the tenant's
id in braces, a Redis Cluster hash tag, so all of one tenant's keys of a
namespace share a slot (a Lua script may touch several) and two tenants never
share a key. `hash_tag` makes the same braces around other parts (a breaker's
name, a tenant schema and stream id). Every builder refuses an empty part and
a tenant id that is not a positive integer, so a missing tenant fails instead
of naming a shared key.
"""

from __future__ import annotations

Part = str | int


def redis_key(*parts: Part) -> str:
    """`a:b:c` from ("a", "b", "c"); integers are written in decimal."""
    if not parts:
        raise ValueError("a Redis key needs at least one part")
    return ":".join(_text(part) for part in parts)


def hash_tag(*parts: Part) -> str:
    """`{a:b}`: the parts inside a Redis Cluster hash tag (one slot for every key sharing it)."""
    return "{" + redis_key(*parts) + "}"


def tenant_tag(tenant_id: int) -> str:
    """`{t7}`: the hash tag naming tenant 7."""
    if isinstance(tenant_id, bool) or not isinstance(tenant_id, int) or tenant_id <= 0:
        raise ValueError(f"a tenant key needs a tenant id, got {tenant_id!r}")
    return "{t" + str(tenant_id) + "}"


def tenant_key(namespace: str, tenant_id: int, *parts: Part) -> str:
    """`namespace:{t<tenant_id>}:parts...`: a key that belongs to one tenant."""
    return redis_key(namespace, tenant_tag(tenant_id), *parts)


def _text(part: Part) -> str:
    if isinstance(part, bool):
        raise ValueError("a Redis key part cannot be a boolean")
    text = str(part)
    if not text:
        raise ValueError("a Redis key part cannot be empty")
    return text
