"""The admin channel page of a WhatsApp channel: its Sync templates action fetches the
templates from the stand-in Graph API and the page lists them with status, language and
parameters; other channel types have no templates card."""

from __future__ import annotations

import html

from tests.integration.web.conftest import Client
from tests.integration.whatsapp.standins import MetaStandIn
from tests.support.api import Api


async def test_sync_button_and_templates_card(admin: Client, web_api: Api) -> None:
    async with MetaStandIn(token="tok") as meta:
        tenant = await web_api.tenant("tpl-page")
        channel = await web_api.channel(tenant["id"], name="wa", type="whatsapp_meta",
                                        mode="outbound", config={
            "phone_number_id": meta.phone_number_id, "access_token": "tok",
            "verify_token": "v", "app_secret": "app-secret", "api_base_url": meta.url, "api_version": meta.version,
            "business_account_id": meta.waba_id})
        page = f"/admin/channels/{channel['id']}"
        status, body, _ = await admin.get(page)
        assert status == 200 and "No templates synced yet" in body
        # The account id the sync needs is a field of the channel's form.
        assert 'name="config.whatsapp_meta.business_account_id"' in body
        assert f'action="{page}/actions/sync_templates"' in body
        status, body, _ = await admin.post(f"{page}/actions/sync_templates", {})
        assert status == 200 and "Sync templates: done" in html.unescape(body)
        status, body, _ = await admin.get(page)
        text = html.unescape(body)
        assert "<td>order_update</td><td>en_US</td><td>APPROVED</td><td>UTILITY</td>" in text
        assert "<td>header: image, body: 2</td>" in text
        assert "<td>spring_sale</td><td>en_US</td><td>REJECTED</td>" in text
    web = await web_api.channel(tenant["id"], name="web", type="websocket")
    status, body, _ = await admin.get(f"/admin/channels/{web['id']}")
    assert status == 200 and "Message templates" not in body
