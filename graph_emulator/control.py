"""The emulator's HTTP control surface under /_emulator/ (a path Graph does not use): demo and by hand.

No bearer token: it listens on 127.0.0.1 only and acts as the world around Graph (an admin changing the
directory, a person saving a contact on a phone, an outage). Each endpoint calls the same Python method a
test would call, so both ways change the tenant identically (delta, notifications, request log).

    GET    /_emulator/log                               counts (filters: method, route, mailbox, status)
    POST   /_emulator/log/clear
    POST   /_emulator/scenario                          {"name": "logistics", "params": {...}}
    POST   /_emulator/users                             {user properties}            -> 201 user
    PATCH  /_emulator/users/{id}                        {properties}                 -> 200 user
    DELETE /_emulator/users/{id}[?hard=true]                                         -> 204
    GET    /_emulator/mailboxes/{user}/contacts[?folderId=]                          -> 200 {"value": [...]}
    POST   /_emulator/mailboxes/{user}/contacts         {"fields": {...}, "folderId"?} -> 201 contact
    PATCH  /_emulator/mailboxes/{user}/contacts/{id}    {"fields": {...}, "stripsHiddenProperties"?} -> 200 contact
    DELETE /_emulator/mailboxes/{user}/contacts/{id}                                 -> 204
    POST   /_emulator/faults                            Faults.configure arguments, or {"clear": true}
    POST   /_emulator/faults/fail_next                  Faults.fail_next arguments
    POST   /_emulator/throttle                          Throttle.configure arguments
    POST   /_emulator/subscriptions/{id}/lifecycle      {"event": "missed"}          -> 202
    POST   /_emulator/delta/expire                                                   -> 204
    POST   /_emulator/certificates                      {"hostnames": [...]}  -> 201 {"certificate", "key"} (PEM)

The certificates are issued by the emulator's CA: a webhook receiver on this machine (`galsync functions`)
serves with one, and the emulator's notifications trust it, as Graph trusts a public CA's certificate.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote

from .faults import Faults
from .protocol import GraphError, Response, new_request_id
from .requestlog import RequestLog
from .tenant import Tenant
from .throttle import Throttle

PREFIX = "/_emulator"

Endpoint = Callable[["Control", dict[str, str], dict[str, str], Any], Response]


IssueCert = Callable[..., tuple[str, str]]  # (*hostnames) -> (certificate chain path, key path)


class Control:
    def __init__(self, tenant: Tenant, throttle: Throttle, faults: Faults, log: RequestLog,
                 issue_cert: IssueCert | None = None) -> None:
        self.tenant = tenant
        self.throttle = throttle
        self.faults = faults
        self.log = log
        self.issue_cert = issue_cert

    def handle(self, method: str, target: str, body: bytes) -> Response:
        path, _, raw_query = target.partition("?")
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        path = unquote(path.removeprefix(PREFIX)) or "/"
        try:
            for verb, pattern, endpoint in _ENDPOINTS:
                match = pattern.match(path)
                if match and verb == method.upper():
                    return endpoint(self, match.groupdict(), query, _json(body))
            known = any(p.match(path) for _, p, _ in _ENDPOINTS)
            raise GraphError(
                405 if known else 404, "BadRequest", f"No control endpoint {method} {PREFIX}{path}."
            )
        except GraphError as exc:
            return exc.to_response(new_request_id(), None)
        except (TypeError, ValueError, KeyError) as exc:  # bad arguments for the store method: name them
            return GraphError(400, "BadRequest", f"{type(exc).__name__}: {exc}").to_response(
                new_request_id(), None
            )

    # --- endpoints ----------------------------------------------------------------------------------

    def get_log(self, params: dict[str, str], query: dict[str, str], body: Any) -> Response:
        summary = self.log.summary()
        if query:
            status = int(query["status"]) if "status" in query else None
            summary["count"] = self.log.count(
                method=query.get("method"),
                route=query.get("route"),
                mailbox=query.get("mailbox"),
                status=status,
            )
        return Response(200, summary)

    def clear_log(self, params: dict[str, str], query: dict[str, str], body: Any) -> Response:
        self.log.clear()
        return Response(204)

    def load_scenario(self, params: dict[str, str], query: dict[str, str], body: Any) -> Response:
        from . import scenarios

        spec = _object(body)
        result = scenarios.load(self.tenant, _text(spec, "name"), **_object(spec.get("params", {})))
        return Response(200, json.loads(json.dumps(result, default=str)))

    def add_user(self, params: dict[str, str], query: dict[str, str], body: Any) -> Response:
        return Response(201, self.tenant.directory.add_user(**_object(body)))

    def update_user(self, params: dict[str, str], query: dict[str, str], body: Any) -> Response:
        self.tenant.directory.update_user(params["id"], **_object(body))
        return Response(200, self.tenant.directory.get_user(params["id"]))

    def delete_user(self, params: dict[str, str], query: dict[str, str], body: Any) -> Response:
        self.tenant.directory.delete_user(params["id"], hard=query.get("hard", "").lower() == "true")
        return Response(204)

    def list_contacts(self, params: dict[str, str], query: dict[str, str], body: Any) -> Response:
        contacts = self.tenant.mailboxes.contacts(params["user"], folder_id=query.get("folderId"))
        return Response(200, {"value": contacts})

    def phone_create(self, params: dict[str, str], query: dict[str, str], body: Any) -> Response:
        spec = _object(body)
        contact = self.tenant.mailboxes.phone_create_contact(
            params["user"], _object(spec.get("fields")), folder_id=spec.get("folderId")
        )
        return Response(201, contact)

    def phone_update(self, params: dict[str, str], query: dict[str, str], body: Any) -> Response:
        spec = _object(body)
        contact = self.tenant.mailboxes.phone_update_contact(
            params["user"], params["id"], _object(spec.get("fields")),
            strips_hidden_properties=spec.get("stripsHiddenProperties") is True,
        )
        return Response(200, contact)

    def phone_delete(self, params: dict[str, str], query: dict[str, str], body: Any) -> Response:
        self.tenant.mailboxes.phone_delete_contact(params["user"], params["id"])
        return Response(204)

    def set_faults(self, params: dict[str, str], query: dict[str, str], body: Any) -> Response:
        spec = _object(body)
        if spec.pop("clear", False):
            self.faults.clear()
        settings = self.faults.configure(**spec)
        return Response(200, _settings_json(settings))

    def fail_next(self, params: dict[str, str], query: dict[str, str], body: Any) -> Response:
        self.faults.fail_next(**_object(body))
        return Response(204)

    def set_throttle(self, params: dict[str, str], query: dict[str, str], body: Any) -> Response:
        return Response(200, _settings_json(self.throttle.configure(**_object(body))))

    def lifecycle(self, params: dict[str, str], query: dict[str, str], body: Any) -> Response:
        self.tenant.subscriptions.emit_lifecycle(params["id"], _text(_object(body), "event"))
        return Response(202)

    def expire_delta(self, params: dict[str, str], query: dict[str, str], body: Any) -> Response:
        self.tenant.expire_delta_tokens()
        return Response(204)

    def certificate(self, params: dict[str, str], query: dict[str, str], body: Any) -> Response:
        if self.issue_cert is None:
            raise GraphError(404, "BadRequest", "This emulator issues no certificates.")
        names = _object(body).get("hostnames") or ["127.0.0.1", "localhost"]
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise GraphError(400, "BadRequest", "The field 'hostnames' must be a list of host names.")
        cert_path, key_path = self.issue_cert(*names)
        with open(cert_path, encoding="ascii") as cert, open(key_path, encoding="ascii") as key:
            return Response(201, {"certificate": cert.read(), "key": key.read()})


_SEGMENT = r"[^/]+"
_ENDPOINTS: list[tuple[str, re.Pattern[str], Endpoint]] = [
    (verb, re.compile("^" + re.sub(r"\{(\w+)\}", rf"(?P<\1>{_SEGMENT})", template) + "$"), fn)
    for verb, template, fn in [
        ("GET", "/log", Control.get_log),
        ("POST", "/log/clear", Control.clear_log),
        ("POST", "/scenario", Control.load_scenario),
        ("POST", "/users", Control.add_user),
        ("PATCH", "/users/{id}", Control.update_user),
        ("DELETE", "/users/{id}", Control.delete_user),
        ("GET", "/mailboxes/{user}/contacts", Control.list_contacts),
        ("POST", "/mailboxes/{user}/contacts", Control.phone_create),
        ("PATCH", "/mailboxes/{user}/contacts/{id}", Control.phone_update),
        ("DELETE", "/mailboxes/{user}/contacts/{id}", Control.phone_delete),
        ("POST", "/faults", Control.set_faults),
        ("POST", "/faults/fail_next", Control.fail_next),
        ("POST", "/throttle", Control.set_throttle),
        ("POST", "/subscriptions/{id}/lifecycle", Control.lifecycle),
        ("POST", "/delta/expire", Control.expire_delta),
        ("POST", "/certificates", Control.certificate),
    ]
]


def _json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise GraphError(400, "BadRequest", "The control request body is not valid JSON.") from None


def _object(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise GraphError(400, "BadRequest", "Expected a JSON object.")
    return dict(value)


def _text(spec: dict[str, Any], name: str) -> str:
    value = spec.get(name)
    if not isinstance(value, str) or not value:
        raise GraphError(400, "BadRequest", f"The field '{name}' is required and must be a string.")
    return value


def _settings_json(settings: object) -> dict[str, Any]:
    out = {}
    for key, value in vars(settings).items():
        out[key] = (
            sorted(value)
            if isinstance(value, frozenset)
            else list(value)
            if isinstance(value, tuple)
            else value
        )
    return out
