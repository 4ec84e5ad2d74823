"""Hypothesis throws malformed and hostile requests at both HTTP functions: never a 5xx, never a queue message.

The requests go through `app.get_functions()` with real `func.HttpRequest` objects (the Functions host is
the one thing stood in for). A genuine subscription exists with its secret, so the hostile payloads have
something to aim at: right subscription id, right tenant, but no secret, which they never know.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync_core.service.queue_messages import sync_lease
from tests.functions.conftest import Configure
from tests.functions.functions_host import FunctionsHost

TENANT = "7f3a1c2e-0000-4000-8000-00000000aaaa"
SID = "0b1c2d3e-0000-4000-8000-000000000001"
SECRET = "the-real-client-state-nobody-knows"

FIELDS = ("id", "subscriptionId", "subscriptionExpirationDateTime", "clientState", "changeType", "resource",
          "tenantId", "resourceData", "lifecycleEvent", "value")

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
field_values = st.one_of(
    json_values,
    st.sampled_from([SID, TENANT, "updated", "deleted", "missed", "subscriptionRemoved",
                     "reauthorizationRequired", "Users/u1", "", "x" * 2000, "\u202e\u0000<script>"]),
)
items = st.dictionaries(st.sampled_from(FIELDS), field_values, max_size=9)
# Shaped like Graph's payloads (ids and tenant right), everything else hostile or broken.
shaped = st.builds(lambda values: {"value": values}, st.lists(items | json_values, max_size=5))
# Complete and well formed, aimed at the real subscription: only the secret is a guess.
forged = st.builds(
    lambda secret, event, lifecycle: {"value": [
        {"subscriptionId": SID, "tenantId": TENANT, "clientState": secret, "changeType": "updated",
         "resource": "Users/u1", **({"lifecycleEvent": event} if lifecycle else {})}]},
    st.none() | st.text(max_size=130) | st.just(SECRET[:-1]) | st.just(SECRET.upper()),
    st.sampled_from(["missed", "subscriptionRemoved", "reauthorizationRequired"]),
    st.booleans(),
)
bodies = st.one_of(
    forged.map(lambda v: json.dumps(v).encode()),
    forged.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    shaped.map(lambda v: json.dumps(v).encode()),
    shaped.map(lambda v: json.dumps(v).encode()[: max(1, len(json.dumps(v)) // 2)]),  # truncated
)
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
                                 "application/json", "application/json",
                                 "text/plain", "application/xml", "", "application/json;;;", "multipart/form-data"])
queries = st.one_of(
    st.just(""),
    st.just(""),
    st.text(max_size=60).map(lambda t: "&validationToken=" + quote(t, safe="")),
    st.binary(max_size=40).map(lambda b: "&validationToken=" + quote(b, safe="")),
)


@pytest.mark.parametrize("route", ["notifications", "lifecycle"])
def test_hostile_requests_never_get_a_5xx_and_never_enqueue(configure: Configure, host: FunctionsHost,
                                                            route: str) -> None:
    rt = configure()
    rt.store.put_doc("subscription", SID, {"resource": "users", "client_state": SECRET, "profiles": ["Dispatch"]})
    seen: list[int] = []

    @settings(max_examples=200, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(body=bodies, content_type=content_types, query=queries)
    def attack(body: bytes, content_type: str, query: str) -> None:
        headers = {"Content-Type": content_type} if content_type else {}
        response: Any = host.http(route, "POST", f"https://x.example/api/{route}?code=k{query}", headers, body)
        status = response.status_code
        seen.append(status)
        assert status < 500, response.get_body()
        if status == 200:  # only the validation handshake answers 200, as plain text
            assert "validationToken" in query
            assert response.headers["Content-Type"].startswith("text/plain")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert host.sent == []

    attack()
    assert host.count("sync-source") == 0
    assert not rt.store.has_pending(sync_lease("Dispatch"))
    assert {202, 400, 415}.issubset(seen), "the strategies reach the parser, the content type and the secret check"
