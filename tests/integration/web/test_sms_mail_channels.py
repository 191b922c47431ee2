"""The admin channel form for the SMS and e-mail types (issue 18): their inputs with help
text, secrets as password inputs, and a channel of each created from the form with the values
as the form sends them (text), its secrets never shown again."""

from __future__ import annotations

import re

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from tests.integration.web.conftest import Client
from tests.support.api import Api

FIELDS = {
    "sms_twilio": ("account_sid", "auth_token", "from", "messaging_service_sid"),
    "sms_vonage": ("from", "application_id", "private_key", "api_key", "api_secret",
                   "signature_secret"),
    "email_smtp": ("from_address", "from_name", "host", "port", "security", "username",
                   "password", "inbound_address", "max_message_bytes"),
    "email_sendgrid": ("api_key", "from_address", "inbound_address", "webhook_username",
                       "webhook_password", "event_public_key"),
}
SECRETS = ("sms_twilio.auth_token", "sms_vonage.private_key", "sms_vonage.signature_secret",
           "email_smtp.password", "email_sendgrid.api_key", "email_sendgrid.webhook_password")


def _errors(body: str) -> list[str]:
    return re.findall(r'class="errors">([^<]+)', body)


async def test_form_has_the_fields_and_help(admin: Client) -> None:
    status, body, _ = await admin.get("/admin/channels")
    assert status == 200
    for kind, keys in FIELDS.items():
        for key in keys:
            assert f'name="config.{kind}.{key}"' in body, (kind, key)
    for name in SECRETS:
        assert re.search(rf'name="config\.{re.escape(name)}" type="password"', body), name
    assert "Account Info → Auth Token" in body and "Signed webhooks" in body
    assert "CONVERGER_SMTP_PORT" in body and "Signed Event Webhook" in body


async def test_create_each_from_the_form(admin: Client, web_api: Api) -> None:
    t = await web_api.tenant("sms-mail-web")
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    import base64
    ec_key = base64.b64encode(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).decode()
    forms = {
        "sms_twilio": {"account_sid": "AC" + "ab" * 16, "auth_token": "tw-secret-token",
                       "from": "+14155550100"},
        "sms_vonage": {"from": "447700900000", "application_id":
                       "aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab",
                       "private_key": " ".join(pem.splitlines()),  # a one-line input
                       "signature_secret": "vonage-web-signature-secret"},
        "email_smtp": {"from_address": "help@shop.example", "host": "smtp.shop.example",
                       "port": "587", "username": "help", "password": "smtp-web-pass",
                       "max_message_bytes": "1048576"},
        "email_sendgrid": {"api_key": "SG.web-key", "from_address": "help@shop.example",
                           "webhook_username": "sg", "webhook_password": "sg-web-pass",
                           "event_public_key": ec_key},
    }
    for kind, values in forms.items():
        status, body, _ = await admin.post("/admin/channels", {
            "tenant_id": t["id"], "name": kind, "type": kind, "mode": "duplex",
            **{f"config.{kind}.{k}": v for k, v in values.items()}})
        assert status == 201, (kind, _errors(body))
        for secret in ("tw-secret-token", "vonage-web-signature-secret", "smtp-web-pass",
                       "SG.web-key", "sg-web-pass"):
            assert secret not in body
    # A value the type refuses is shown next to the form, not a 500.
    status, body, _ = await admin.post("/admin/channels", {
        "tenant_id": t["id"], "name": "bad", "type": "email_smtp", "mode": "duplex",
        "config.email_smtp.from_address": "help@shop.example",
        "config.email_smtp.host": "smtp.shop.example", "config.email_smtp.port": "99999"})
    assert status == 422 and any("port" in e for e in _errors(body))
