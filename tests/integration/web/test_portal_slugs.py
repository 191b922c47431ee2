"""Portal sign-in when two tenants share a name. The portal used to sign in by tenant name and
took the first tenant of that name, so the second one's users always got 401. Every tenant now
has a unique slug (its sign-in name); the name still works while it names one tenant with the
typed e-mail. A database made before slugs existed gets them on start-up, oldest tenant first."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from gateway.crypto import hash_password
from store import migrations
from store.connect import connect
from tests.integration.web.conftest import Client
from tests.support.api import Api
from tests.support.postgres import sqlite_only
from tests.support.server import Server

PASSWORD = "portal pass 1"


async def _user(admin: Client, tenant_id: str, email: str, password: str = PASSWORD) -> None:
    status, body, _ = await admin.add_tenant_user({
        "tenant_id": tenant_id, "name": "U", "email": email, "password": password,
        "role": "member"})
    assert status == 302, body


async def _signs_in(server: Server, tenant: str, email: str, password: str = PASSWORD) -> str:
    """The signed-in portal dashboard's body, or "" when the login is refused."""
    user = Client(server.url)
    try:
        if await user.login(email, password, "portal", tenant=tenant) != 302:
            return ""
        status, body, _ = await user.get("/portal")
        assert status == 200
        return body
    finally:
        await user.close()


async def test_users_of_both_tenants_of_one_name_sign_in(admin: Client, web_api: Api,
                                                         web_server: Server) -> None:
    first, second = await web_api.tenant("Twin Co"), await web_api.tenant("Twin Co")
    assert (first["slug"], second["slug"]) == ("twin-co", "twin-co-2")
    await _user(admin, first["id"], "ann@first.example")
    await _user(admin, second["id"], "bob@second.example")
    await _user(admin, first["id"], "sam@both.example", "first's password")
    await _user(admin, second["id"], "sam@both.example", "second's password")

    # By name: each user reaches their own tenant (the second one's user got 401 before).
    assert 'data-slug>twin-co<' in await _signs_in(web_server, "Twin Co", "ann@first.example")
    assert 'data-slug>twin-co-2<' in await _signs_in(web_server, "Twin Co", "bob@second.example")
    # By slug (any case): always the one tenant.
    assert 'data-slug>twin-co-2<' in await _signs_in(web_server, "TWIN-CO-2", "bob@second.example")
    assert await _signs_in(web_server, "twin-co", "bob@second.example") == ""
    # One e-mail in both: the name is ambiguous and refused; the slug decides.
    assert await _signs_in(web_server, "Twin Co", "sam@both.example", "second's password") == ""
    body = await _signs_in(web_server, "twin-co-2", "sam@both.example", "second's password")
    assert 'data-slug>twin-co-2<' in body
    assert await _signs_in(web_server, "twin-co-2", "sam@both.example", "first's password") == ""
    # The admin's tenants page shows every slug.
    _, page, _ = await admin.get("/admin/tenants")
    assert 'data-slug title="what its users type to sign in to the portal">twin-co-2<' in page


def _old_database(path: Path) -> None:
    """A database as the release before slugs left it: two tenants named Acme, a user each."""
    conn = connect(path)
    mset = migrations.migrations()
    mset.apply(sqlite_utils.Database(conn), stop_before="m0008_tenant_slugs")
    assert "m0008_tenant_slugs" not in migrations.applied(conn)
    for n, when in ((1, "2026-01-01T00:00:00.000000Z"), (2, "2026-02-01T00:00:00.000000Z")):
        conn.execute("INSERT INTO tenants (id, name, api_key_hash, api_key_hint, inserted_at, "
                     "updated_at) VALUES (?, 'Acme', ?, 'cvk_…', ?, ?)",
                     (f"00000000-0000-7000-8000-00000000000{n}", f"h{n}", when, when))
        conn.execute("INSERT INTO tenant_users (id, tenant_id, email, password_hash, name, "
                     "inserted_at, updated_at) VALUES (?, ?, ?, ?, 'U', ?, ?)",
                     (f"00000000-0000-7000-8000-0000000000a{n}",
                      f"00000000-0000-7000-8000-00000000000{n}", f"user{n}@acme.example",
                      hash_password(PASSWORD), when, when))
    conn.commit()
    conn.close()


@sqlite_only("an older release's SQLite file is upgraded in place (on PostgreSQL the same "
             "migrations run: tests/unit/store/test_tenant_id.py upgrades one there)")
async def test_existing_tenants_get_slugs_when_the_server_upgrades(tmp_path: Path) -> None:
    _old_database(tmp_path / "converger.db")
    with Server(tmp_path) as server:
        assert 'data-slug>acme<' in await _signs_in(server, "Acme", "user1@acme.example")
        assert 'data-slug>acme-2<' in await _signs_in(server, "Acme", "user2@acme.example")
        assert 'data-slug>acme-2<' in await _signs_in(server, "acme-2", "user2@acme.example")
    conn = sqlite3.connect(tmp_path / "converger.db")
    try:
        slugs = conn.execute("SELECT slug FROM tenants ORDER BY inserted_at").fetchall()
        assert [s for (s,) in slugs] == ["acme", "acme-2"]
        with pytest.raises(sqlite3.IntegrityError):  # two tenants never share a slug
            conn.execute("UPDATE tenants SET slug = 'acme' WHERE slug = 'acme-2'")
    finally:
        conn.close()
