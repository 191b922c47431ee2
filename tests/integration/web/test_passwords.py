"""Admin passwords over plain HTTP against the real server (issue 23): an admin changes their
own (knowing the current one), a super admin resets another's; only super admins reset."""

from __future__ import annotations

from tests.integration.web.conftest import Client
from tests.support.server import Server


async def _new_admin(admin: Client, email: str, role: str = "admin") -> None:
    await admin.get("/admin/users")
    status, _, _ = await admin.post("/admin/users", {"email": email, "name": "P", "role": role,
                                                     "password": "first password 1"})
    assert status == 302


async def test_change_own_password_and_super_admin_reset(admin: Client,
                                                         web_server: Server) -> None:
    await _new_admin(admin, "pw-admin@example.com")
    me = Client(web_server.url)
    try:
        assert await me.login("pw-admin@example.com", "first password 1") == 302
        await me.get("/admin/account")
        # The current password is required, and the new one twice.
        status, body, _ = await me.post("/admin/account/password", {
            "current_password": "wrong", "new_password": "second password 2",
            "confirm_password": "second password 2"})
        assert status == 422 and "is not your current password" in body
        status, body, _ = await me.post("/admin/account/password", {
            "current_password": "first password 1", "new_password": "second password 2",
            "confirm_password": "typo"})
        assert status == 422 and "does not match" in body
        status, _, headers = await me.post("/admin/account/password", {
            "current_password": "first password 1", "new_password": "second password 2",
            "confirm_password": "second password 2"})
        assert status == 302 and headers["location"] == "/admin/account"
        # An admin (not super) cannot reset anyone's.
        target = _id(await admin.get("/admin/users"), "pw-admin@example.com")
        await me.get("/admin/users")
        status, _, _ = await me.post(f"/admin/users/{target}/password",
                                     {"password": "hijacked password"})
        assert status == 403
    finally:
        await me.close()
    again = Client(web_server.url)
    try:
        assert await again.login("pw-admin@example.com", "first password 1") != 302
        assert await again.login("pw-admin@example.com", "second password 2") == 302
    finally:
        await again.close()
    # The super admin resets it.
    _, body, _ = await admin.get("/admin/users")
    uid = _id((200, body, None), "pw-admin@example.com")
    status, _, _ = await admin.post(f"/admin/users/{uid}/password", {"password": "reset password 3"})
    assert status == 302
    after = Client(web_server.url)
    try:
        assert await after.login("pw-admin@example.com", "reset password 3") == 302
    finally:
        await after.close()
    _, body, _ = await admin.get("/admin/audit_logs?resource_type=admin_user&action=update")
    assert "reset password 3" not in body and "second password 2" not in body


def _id(page: tuple[int, str, object], email: str) -> str:
    import re

    body = page[1]
    row = body[body.index(f'data-user="{email}"'):]
    m = re.search(r'/admin/users/([0-9a-f-]{36})/', row)
    assert m, email
    return m.group(1)
