"""The route table of permissions (gateway.auth.ROUTES) names every management route and page
the app serves, and only those; the decision itself (gateway.domain.authz.decide)."""

from __future__ import annotations

import re

import pytest

from gateway.app import create_app
from gateway.auth import ROUTES
from gateway.config import Settings
from gateway.domain import Actor, Forbidden, NotFound, authz

PUBLIC = {("GET", "/admin/login"), ("POST", "/admin/login"), ("GET", "/admin/setup/{token}"),
          ("POST", "/admin/setup/{token}"), ("GET", "/portal/login"), ("POST", "/portal/login"),
          ("GET", "/portal/invite/{token}"), ("POST", "/portal/invite/{token}"),
          ("GET", "/admin/sso/login"), ("GET", "/admin/sso/callback")}


def served() -> set[tuple[str, str]]:
    app = create_app(Settings(data_dir="/nonexistent-routes", secret_key="k" * 32))
    out = set()
    for route in app.router.routes:
        path = re.sub(r"<([^:>]+)(:[^>]*)?>", r"{\1}", "/" + route.path.lstrip("/")).rstrip("/")
        if path.startswith(("/api/admin", "/admin", "/portal")):
            out |= {(m, path) for m in route.methods if m not in ("HEAD", "OPTIONS")}
    return out


def test_every_management_route_declares_its_permission() -> None:
    routes = served()
    assert routes - PUBLIC - set(ROUTES) == set(), "routes with no permission in auth.ROUTES"
    assert set(ROUTES) - routes == set(), "auth.ROUTES names routes the app does not serve"
    unknown = {p for p in ROUTES.values() if p != authz.SELF} - authz.PERMISSIONS
    assert unknown == set()


WHO = Actor("admin_token", "t")


def test_builtin_roles_keep_their_behaviour() -> None:
    sup = authz.principal(WHO, "super_admin", authz.BUILTIN["super_admin"])
    admin = authz.principal(WHO, "admin", authz.BUILTIN["admin"])
    viewer = authz.principal(WHO, "viewer", authz.BUILTIN["viewer"])
    for p in authz.PERMISSIONS:
        assert authz.decide(sup, p) is None
        assert (authz.decide(viewer, p) is None) == p.endswith(":read")
    for p in ("admins:write", "tokens:write", "tokens:delete", "roles:write"):
        refused = authz.decide(admin, p)
        assert isinstance(refused, Forbidden) and refused.code == "forbidden_role"
    refused = authz.decide(viewer, "channels:write")
    assert isinstance(refused, Forbidden) and refused.code == "read_only"
    assert authz.decide(admin, "channels:delete", tenant_id="any") is None


@pytest.mark.parametrize("permission", ["channels:read", "channels:write"])
def test_scope(permission: str) -> None:
    agency = authz.principal(WHO, "x", authz.BUILTIN["admin"], tenants=["a"])
    assert authz.decide(agency, permission, tenant_id="a", channel_id="c") is None
    assert isinstance(authz.decide(agency, permission, tenant_id="b"), NotFound)
    refused = authz.decide(agency, "settings:read")
    assert isinstance(refused, Forbidden) and refused.code == "out_of_scope"
    assert isinstance(authz.decide(agency, "tenants:write", whole=True), Forbidden)
    # lacking the permission answers the same whatever the tenant (no existence oracle)
    reader = authz.principal(WHO, "r", authz.READS, tenants=["a"])
    assert type(authz.decide(reader, "channels:write", tenant_id="a")) is type(
        authz.decide(reader, "channels:write", tenant_id="b")) is Forbidden
    token = authz.principal(WHO, "ci", authz.BUILTIN["admin"], tenants=["a"], channels=["c"])
    assert authz.decide(token, permission, tenant_id="a", channel_id="c") is None
    assert isinstance(authz.decide(token, permission, tenant_id="a", channel_id="d"), NotFound)
    assert isinstance(authz.decide(token, "routing_rules:read", tenant_id="a"), NotFound)
    assert authz.tenant_filter(agency, None) == frozenset({"a"})
    assert authz.tenant_filter(agency, "b") == frozenset()
    assert authz.channel_filter(token) == frozenset({"c"})
