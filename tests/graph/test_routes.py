"""Which mailbox a Graph URL lands in, and which URLs the client accepts (pure: no HTTP)."""

from __future__ import annotations

import pytest

from sync_core.graph.routes import mailbox_of, permission_hint, redact, relative_path

BASE = "https://graph.example/v1.0"


@pytest.mark.parametrize(
    ("path", "mailbox"),
    [
        ("/users/ABC-1/contactFolders", "abc-1"),
        ("/users/abc-1/contactFolders/F1/contacts/C1?$select=id", "abc-1"),
        ("/users/abc-1/contacts", "abc-1"),
        ("/users/abc-1/contacts/delta", "abc-1"),
        ("/users/Ann.Driver%40Contoso.example/mailboxSettings/userPurpose", "ann.driver@contoso.example"),
        ("users/abc-1/CONTACTFOLDERS/x", "abc-1"),  # inner $batch urls may lack the slash
        ("/users", None),
        ("/users/delta?$select=id", None),
        ("/users/abc-1", None),
        ("/users/abc-1/photo/$value", None),
        ("/contacts/delta", None),
        ("/groups/g1/members", None),
        ("/$batch", None),
    ],
)
def test_mailbox_of(path: str, mailbox: str | None) -> None:
    assert mailbox_of(path) == mailbox


def test_relative_path_accepts_paths_and_links_under_the_base() -> None:
    assert relative_path("/users/a/contacts", BASE) == "/users/a/contacts"
    assert relative_path("users/a/contacts", BASE) == "/users/a/contacts"
    assert relative_path(f"{BASE}/users/a/contacts?$skiptoken=x", BASE) == "/users/a/contacts?$skiptoken=x"


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/v1.0/users",
        "https://graph.example/v1.0.evil.example/users",
        "https://graph.example/beta/users",
        "http://graph.example/v1.0/users",
    ],
)
def test_links_elsewhere_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="outside"):
        relative_path(url, BASE)


def test_redact_drops_query_and_upns() -> None:
    assert redact("/users/ann@contoso.example/contacts?$filter=displayName eq 'Ann'") == "/users/{upn}/contacts"
    assert redact("/users/abc-1/contactFolders/F1") == "/users/abc-1/contactFolders/F1"


def test_permission_hints_name_what_to_grant() -> None:
    assert "Contacts.ReadWrite" in (permission_hint("POST", "/users/a/contactFolders", "ErrorAccessDenied") or "")
    assert "management scope" in (permission_hint("POST", "/users/a/contacts", "ErrorAccessDenied") or "")
    assert "MailboxSettings.Read" in (permission_hint("GET", "/users/a/mailboxSettings/userPurpose", "") or "")
    assert "User.Read.All" in (permission_hint("GET", "/users/delta", "Authorization_RequestDenied") or "")
    assert "OrgContact.Read.All" in (permission_hint("GET", "/contacts/delta", "") or "")
