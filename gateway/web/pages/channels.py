"""The admin's channels page: list (with health and each channel's inbound URL), create (its
secret and a channel token are shown once), enable/disable, secret rotation, a fresh channel
token, the channel type's management actions (Telegram's webhook registration…) and deletion.
Changes go through ``gateway.domain`` (validation, encryption of secrets, audit)."""

from __future__ import annotations

import json
import secrets
from typing import Any

from sanic import Request
from sanic.response import HTTPResponse, redirect

import adapters
from adapters import templates as tpl
from store import channels, dashboard, templates

from ... import channel_actions, errors
from ...auth import actor
from ...domain import NotFound, ValidationFailed
from ...domain import channels as channel_ops
from ...domain.whatsapp import WHATSAPP_TYPES
from ...http import gw
from ...tokens import secret_version
from .. import kit, steps
from ..kit import arg, back, flash, form, found, render
from . import ADMIN

# Config inputs of the types that predate ``Adapter.config_fields``: (key, label, secret?,
# required?, where the provider's console shows the value). Secret inputs are password fields
# and the values are never rendered back.
CONFIG_FIELDS: dict[str, list[tuple[str, str, bool, bool, str]]] = {
    "webhook": [("url", "Webhook URL", False, True,
                 "Your receiver's URL; converger POSTs each activity there, signed with the "
                 "channel's secret (x-converger-signature)"),
                ("method", "HTTP method", False, False, "POST (default) or PUT")],
    "whatsapp_meta": [
        ("phone_number_id", "Phone number id", False, True,
         "Meta for Developers → your app → WhatsApp → API Setup: Phone number ID (digits, not "
         "the phone number)"),
        ("access_token", "Access token", True, True,
         "Business Settings → Users → System users → Generate new token (whatsapp_business_"
         "messaging); the API Setup page's temporary token expires in 24 hours"),
        ("verify_token", "Verify token", True, True,
         "Any text you choose; paste the same into WhatsApp → Configuration → Webhook → "
         "Verify token"),
        ("app_secret", "App secret (signature check; needed to receive)", True, False,
         "App settings → Basic → App secret (Show)"),
        ("business_account_id", "WhatsApp Business Account id (to sync templates)", False,
         False, "WhatsApp Manager → Account tools → or API Setup: the WhatsApp Business Account "
         "ID (digits); needed by the Sync templates action")],
    "whatsapp_infobip": [
        ("base_url", "Base URL", False, True,
         "Infobip portal → home page (or Developers → API keys): your personal base URL, "
         "e.g. https://xxxxx.api.infobip.com"),
        ("api_key", "API key", True, True,
         "Developers → API keys → Create API key (scope whatsapp:message:send)"),
        ("sender", "Sender number", False, True,
         "Channels and Numbers → WhatsApp → Senders: the registered number, digits only"),
        ("webhook_username", "Webhook Basic user (needed to receive)", False, False,
         "The user name you set in the sender's inbound configuration (Basic authentication)"),
        ("webhook_password", "Webhook Basic password (needed to receive)", True, False,
         "The password set there with it")],
}
# Console help for inputs whose adapter gives none (the adapters' own ``help`` wins).
HELP: dict[str, dict[str, str]] = {
    "sms_vonage": {"api_secret": "Dashboard → API Settings: API secret, next to the API key"},
    "email_sendgrid": {"webhook_password": "The password in the Inbound Parse destination URL "
                                           "(https://user:password@…)"},
}
# Types whose test event needs no recipient typed (it goes to the configured URL).
NO_RECIPIENT = ("webhook",)


def _fields(kind: str) -> list[tuple[str, str, bool, bool, str]]:
    """(key, label, secret?, required?, help) of a type's config inputs: the adapter's own
    ``config_fields``, else the table above. The adapter's ``secret_fields`` win: a field it
    encrypts is never a plain text input."""
    adapter = adapters.get(kind)
    if adapter is None:
        return []
    extra = HELP.get(kind, {})
    if adapter.config_fields:
        return [(f.key, f.label, f.key in adapter.secret_fields, f.required,
                 f.help or extra.get(f.key, "")) for f in adapter.config_fields]
    return [(k, label, secret or k in adapter.secret_fields, required, help_)
            for k, label, secret, required, help_ in CONFIG_FIELDS.get(kind, [])]


def _types() -> list[dict[str, Any]]:
    return [{"type": t, "modes": list(a.supported_modes), "default": channel_ops.default_mode(t),
             "inbound": "inbound" in a.supported_modes, "fields": _fields(t)}
            for t, a in adapters.REGISTRY.items()]


# Where a provider's console takes the inbound URL, and what to subscribe to there.
CONNECT: dict[str, str] = {
    "whatsapp_meta": "Meta for Developers → your app → WhatsApp → Configuration → Webhook → Edit: "
                     "paste the Callback URL and the Verify token below, Verify and save, then "
                     "Subscribe to the messages field. The App secret (App settings → Basic) "
                     "goes in this channel's App secret field. The channel's whsec_ secret is "
                     "converger's own signing secret: Meta does not need it.",
    "whatsapp_infobip": "Infobip portal → Channels and Numbers → WhatsApp → your sender → "
                        "Inbound configuration: forward messages to the Callback URL (HTTP POST, "
                        "JSON); delivery reports go to the same URL.",
    "telegram": "Use the Register webhook action on this page: it calls Telegram's setWebhook "
                "with the Callback URL and the channel's secret token.",
    "slack": "api.slack.com → your app → Event Subscriptions: paste the Callback URL as the "
             "Request URL, then subscribe to the bot events message.channels, message.im and "
             "app_mention.",
    "webhook": "Your system POSTs JSON messages to the Callback URL, signed with the channel's "
               "secret (x-converger-signature).",
    "sms_twilio": "Twilio Console → Phone Numbers → your number → Messaging: A message comes in → "
                  "Webhook, HTTP POST, the Callback URL. Set CONVERGER_PUBLIC_URL to the URL "
                  "Twilio reaches: it signs that URL. Receipts come to the status URL by "
                  "themselves (StatusCallback).",
    "sms_vonage": "Vonage Dashboard → Applications → your application → Messages: Inbound URL = "
                  "the Callback URL, Status URL = the same ending in /status (POST); API "
                  "Settings → Signed webhooks on, its secret in Signature secret.",
    "email_smtp": "Mail comes in through converger's SMTP server (CONVERGER_SMTP_PORT): point the "
                  "address's MX or your mail server's forwarding at it; no Callback URL.",
    "email_sendgrid": "SendGrid → Settings → Inbound Parse: destination "
                      "https://<user>:<password>@… (the Callback URL with the Inbound Parse "
                      "credentials); Mail Settings → Event Webhook: the same URL ending in "
                      "/status, Signed Event Webhook on (its verification key goes here).",
}


def _actions(kind: str) -> list[tuple[str, str]]:
    adapter = adapters.get(kind)
    return [(a, channel_actions.label(a)) for a in (adapter.actions if adapter else ())]


def _inbound(request: Request, channel: Any) -> str | None:
    """The URL to paste into the provider's console, for channels that take inbound."""
    adapter = adapters.get(channel.type)
    if adapter is None or not adapter.delivers or channel.mode == "outbound":
        return None
    return channel_actions.inbound_url(request, channel.id)


def _connect(request: Request, channel: Any) -> dict[str, Any] | None:
    """The "Connect to provider" panel of a channel that can take inbound: the callback URL,
    the verify token in clear (the provider's console needs it), what to subscribe to. None
    for a type without inbound."""
    adapter = adapters.get(channel.type)
    if adapter is None or "inbound" not in adapter.supported_modes:
        return None
    plain = channel_ops.open_config(request.app.ctx.cipher, channel.config)
    token = plain.get("verify_token")
    return {"url": channel_actions.inbound_url(request, channel.id),
            "refuses": channel.mode == "outbound",
            "verify_token": token if isinstance(token, str) else None,
            "has_verify_token": any(f[0] == "verify_token" for f in _fields(channel.type)),
            "how": CONNECT.get(channel.type, "Point the provider's webhook at the Callback URL.")}


async def _channels_page(request: Request, status: int = 200, **extra: Any) -> HTTPResponse:
    def read(conn: Any) -> dict[str, Any]:
        try:
            items, nxt = channels.list_page(conn, tenant_id=arg(request, "tenant_id"),
                                            mode=arg(request, "mode"), limit=50,
                                            cursor=arg(request, "cursor"),
                                            tenant_ids=kit.tenant_ids(request))
        except ValueError:
            items, nxt = [], None
        return {"channels": items, "next": nxt, "health": dashboard.latest_health(conn),
                "tenant_list": dashboard.all_names(conn, "tenants"),
                "tenant_names": dict(dashboard.all_names(conn, "tenants"))}

    data = await request.app.ctx.db.read(read)
    if extra.get("created") is not None:
        extra["connect"] = _connect(request, extra["created"])
    context = steps.context(extra.pop("step_rows", []))
    return render(request, "admin/channels.html", status=status, types=_types(), **context,
                  types_json=json.dumps(_types()), summary=_summary,
                  unsigned=channel_ops.unsigned, actions=_actions,
                  inbound=lambda c: _inbound(request, c), **data, **extra)


def _summary(channel: Any) -> str:
    cfg = channel.config
    if channel.type == "webhook":
        return f"{cfg.get('method', 'POST')} {cfg.get('url', '')}"
    if channel.type == "whatsapp_meta":
        return f"Phone: {cfg.get('phone_number_id', '')}"
    if channel.type == "whatsapp_infobip":
        return f"Sender: {cfg.get('sender', '')}"
    shown = [f"{label}: {cfg[key]}" for key, label, secret, _req, _help in _fields(channel.type)
             if not secret and key != "api_base_url" and isinstance(cfg.get(key), str | int)]
    return ", ".join(shown)


@ADMIN.get("/channels")
async def channels_page(request: Request) -> HTTPResponse:
    return await _channels_page(request)


def _channel_input(request: Request) -> tuple[dict[str, Any], list[Any], list[Any],
                                                dict[str, list[str]]]:
    """The create form: (config, middleware steps, the steps' rows to draw again, the steps'
    field errors)."""
    kind = form(request, "type")
    config = {}
    for key, *_rest in _fields(kind):
        value = form(request, f"config.{kind}.{key}")
        if value:
            config[key] = value
    parsed, rows, step_errors = steps.parse(request.form)
    return config, parsed, rows, step_errors


def _values(request: Request) -> dict[str, str]:
    """The form as typed, drawn again after an error (secrets are not: they are re-entered)."""
    return {k: v[0] if isinstance(v, list) else v for k, v in (request.form or {}).items()
            if not k.endswith("_csrf") and not k.startswith("steps.")}


@ADMIN.post("/channels")
async def channel_create(request: Request) -> HTTPResponse:
    ctx = request.app.ctx
    config, parsed, rows, step_errors = _channel_input(request)
    values = _values(request)
    if step_errors:
        return await _channels_page(request, 422, errors=step_errors, values=values,
                                    step_rows=rows)
    tenant_id = await kit.form_tenant(request, "channels:write")
    if not kit.is_uuid(tenant_id):
        return await _channels_page(request, 422, errors={"tenant_id": ["choose a tenant"]},
                                    values=values, step_rows=rows)
    try:
        channel, secret = await channel_ops.create(
            gw(request), actor(request), tenant_id=tenant_id, name=form(request, "name"),
            type=form(request, "type"), mode=form(request, "mode") or None, config=config,
            transformations=parsed)
    except ValidationFailed as exc:
        return await _channels_page(request, 422, errors=exc.fields, values=values,
                                    step_rows=rows)
    flash(request, "Channel created")
    token = ctx.tokens.channel_token(channel.id, channel.tenant_id, sv=secret_version(channel))
    return await _channels_page(request, 201, created=channel, shown_once={
        "what": f"secret and a channel token of {channel.name}",
        "value": secret, "extra": token})


# -- one channel, in both areas (the portal: its own tenant's): edit keeping its id and inbound
# URL, connect to the provider, send a test event. The portal's routes are in ``portal``.
def _list_url(request: Request) -> str:
    return f"/{request.ctx.area}/channels"


async def _own_channel(request: Request, channel_id: str) -> Any:
    """The channel, when this page may show it (the portal: only its tenant's); else None."""
    channel = await request.app.ctx.db.read(channels.get, channel_id)
    scope = kit.own_tenant(request)
    if channel is None or (scope is not None and channel.tenant_id != scope):
        return None
    return channel


async def channel_view(request: Request, channel_id: str, *, can_edit: bool, status: int = 200,
                       **extra: Any) -> HTTPResponse:
    """The channel's page. ``can_edit``: the edit form and the verify token's regeneration are
    shown (the caller's role check decided)."""
    ctx = request.app.ctx
    scope = kit.own_tenant(request)

    def read(conn: Any) -> dict[str, Any] | None:
        channel = channels.get(conn, channel_id)
        if channel is None or (scope is not None and channel.tenant_id != scope):
            return None
        return {"c": channel, "inbound_status": channels.inbound_status(conn, channel_id),
                "templates": _templates(conn, channel),
                "health": dashboard.latest_health(conn).get(channel_id),
                "history": dashboard.health_history(conn, channel_id),
                "tenant_name": dict(dashboard.all_names(conn, "tenants")).get(channel.tenant_id)}

    data = await ctx.db.read(read)
    if data is None:
        flash(request, "Channel not found", "error")
        return redirect(_list_url(request))
    c = data["c"]
    info = next(t for t in _types() if t["type"] == c.type) if adapters.get(c.type) else None
    shown = channel_ops.masked_config(ctx.cipher, c.config)
    rows = extra.pop("step_rows", None)
    return render(request, "channel.html", status=status, type_info=info,
                  types_json=json.dumps([info] if info else []), config=shown,
                  connect=_connect(request, c), can_edit=can_edit,
                  actions=_actions(c.type) if request.ctx.area == "admin" else [],
                  can_test=channel_actions.can_test(c), test_to=c.type not in NO_RECIPIENT,
                  **steps.context(steps.rows(c.transformations) if rows is None else rows),
                  **data, **extra)


def _templates(conn: Any, channel: Any) -> list[dict[str, Any]] | None:
    """A WhatsApp channel's synced templates for the page (None: not a WhatsApp channel)."""
    if channel.type not in WHATSAPP_TYPES:
        return None
    out = []
    for t in templates.for_channel(conn, channel.id):
        d = t.as_dict()
        params = {k: tpl.expected(d, k) for k in ("header", "body")}
        d["parameters"] = ", ".join(
            f"{k}: {fmt.lower() if fmt in tpl.HEADER_MEDIA else n}"
            for k, (n, fmt) in params.items() if n) or "none"
        d["synced_at"] = t.synced_at
        out.append(d)
    return out


async def channel_save(request: Request, channel_id: str) -> HTTPResponse:
    """Name, mode, config and middleware of a channel; its id (and so its inbound URL) stays.
    A secret input left empty keeps the stored secret (sent on as the ``****`` mask)."""
    ctx = request.app.ctx
    current = await _own_channel(request, channel_id)
    if current is None:
        flash(request, "Channel not found", "error")
        return redirect(_list_url(request))
    values = _values(request)
    config = channel_ops.masked_config(ctx.cipher, current.config)
    for key, _label, secret, _required, _help in _fields(current.type):
        value = form(request, f"config.{current.type}.{key}")
        if secret:
            config[key] = value if value else config.get(key, channel_ops.MASK)
            if not value and key not in current.config:
                config.pop(key, None)
        elif value:
            config[key] = value
        else:
            config.pop(key, None)
    parsed, rows, step_errors = steps.parse(request.form)
    if step_errors:
        return await channel_view(request, channel_id, can_edit=True, status=422, values=values,
                                  errors=step_errors, step_rows=rows)
    changes = {"name": form(request, "name"), "mode": form(request, "mode") or current.mode,
               "config": config, "transformations": parsed}
    try:
        await channel_ops.update(gw(request), actor(request), channel_id, changes,
                                 tenant_id=kit.own_tenant(request))
    except ValidationFailed as exc:
        return await channel_view(request, channel_id, can_edit=True, status=422, values=values,
                                  errors=exc.fields, step_rows=rows)
    except NotFound:
        flash(request, "Channel not found", "error")
        return redirect(_list_url(request))
    flash(request, "Channel saved")
    return redirect(f"{_list_url(request)}/{channel_id}")


async def new_verify_token(request: Request, channel_id: str) -> HTTPResponse:
    """A new verify token (shown on the channel page, to paste into the provider's console)."""
    ctx = request.app.ctx
    current = await _own_channel(request, channel_id)
    if current is None:
        flash(request, "Channel not found", "error")
        return redirect(_list_url(request))
    if not any(f[0] == "verify_token" for f in _fields(current.type)):
        flash(request, f"A {current.type} channel has no verify token", "error")
        return redirect(f"{_list_url(request)}/{channel_id}")
    config = channel_ops.masked_config(ctx.cipher, current.config)
    config["verify_token"] = secrets.token_urlsafe(24)
    try:
        await channel_ops.update(gw(request), actor(request), channel_id, {"config": config},
                                 tenant_id=kit.own_tenant(request))
    except (ValidationFailed, NotFound) as exc:
        flash(request, f"Verify token not changed: {exc}", "error")
    else:
        flash(request, "New verify token: paste it into the provider's console")
    return redirect(f"{_list_url(request)}/{channel_id}")


async def send_test_event(request: Request, channel_id: str, *, can_edit: bool) -> HTTPResponse:
    """Send a test message to the channel's receiver and show how it went on its page."""
    try:
        outcome = await channel_actions.send_test(
            gw(request), channel_id, channel_actions.public_base(request),
            to=form(request, "to") or None, tenant_id=kit.own_tenant(request))
    except errors.ApiError:
        flash(request, "Channel not found", "error")
        return redirect(_list_url(request))
    return await channel_view(request, channel_id, can_edit=can_edit, test_result=outcome,
                              status=200 if outcome.ok else 502)


@ADMIN.get("/channels/<channel_id:uuid>")
async def channel_page(request: Request, channel_id: Any) -> HTTPResponse:
    return await channel_view(request, str(channel_id), can_edit=True)


@ADMIN.post("/channels/<channel_id:uuid>")
async def channel_edit(request: Request, channel_id: Any) -> HTTPResponse:
    return await channel_save(request, str(channel_id))


@ADMIN.post("/channels/<channel_id:uuid>/verify_token")
async def channel_verify_token(request: Request, channel_id: Any) -> HTTPResponse:
    return await new_verify_token(request, str(channel_id))


@ADMIN.post("/channels/<channel_id:uuid>/test")
async def channel_test(request: Request, channel_id: Any) -> HTTPResponse:
    return await send_test_event(request, str(channel_id), can_edit=True)


async def set_status(request: Request, channel_id: str, tenant_id: str | None) -> bool:
    """Enable or disable a channel (``tenant_id`` set: only one of that tenant's)."""
    new = "inactive" if form(request, "status") == "inactive" else "active"
    ok = await found(channel_ops.set_status(gw(request), actor(request), channel_id, new,
                                            tenant_id=tenant_id))
    flash(request, "Status updated" if ok else "Channel not found", "ok" if ok else "error")
    return ok


@ADMIN.post("/channels/<channel_id:uuid>/status")
async def channel_status(request: Request, channel_id: Any) -> HTTPResponse:
    await set_status(request, str(channel_id), None)
    return back(request, "/admin/channels")


@ADMIN.post("/channels/<channel_id:uuid>/rotate")
async def channel_rotate(request: Request, channel_id: Any) -> HTTPResponse:
    try:
        result = await channel_ops.rotate_secret(gw(request), actor(request), str(channel_id))
    except NotFound:
        flash(request, "Channel not found", "error")
        return redirect("/admin/channels")
    flash(request, "Secret rotated")
    return await _channels_page(request, shown_once={"what": f"new secret of {result[0].name}",
                                                     "value": result[1]})


@ADMIN.post("/channels/<channel_id:uuid>/token")
async def channel_token(request: Request, channel_id: Any) -> HTTPResponse:
    ctx = request.app.ctx
    channel = await ctx.db.read(channels.get, str(channel_id))
    if channel is None:
        flash(request, "Channel not found", "error")
        return redirect("/admin/channels")
    token = ctx.tokens.channel_token(channel.id, channel.tenant_id, sv=secret_version(channel))
    return await _channels_page(request, shown_once={
        "what": f"channel token of {channel.name} (valid 1 hour)", "value": token})


@ADMIN.post("/channels/<channel_id:uuid>/actions/<action>")
async def channel_action(request: Request, channel_id: Any, action: str) -> HTTPResponse:
    """Run a management action; its answer (or the provider's refusal) is shown on the page."""
    cid = str(channel_id)
    try:
        result = await channel_actions.run(gw(request), cid, action,
                                           channel_actions.inbound_url(request, cid))
    except errors.ApiError as exc:
        flash(request, exc.detail, "error")
        return redirect("/admin/channels")
    name = channel_actions.label(action)
    if not result.ok:
        flash(request, f"{name} failed: {result.error}", "error")
        return await _channels_page(request, 502)
    flash(request, f"{name}: done")
    return await _channels_page(request, action_result={
        "action": name, "channel_id": cid, "data": json.dumps(result.data, indent=2)})


@ADMIN.post("/channels/<channel_id:uuid>/delete")
async def channel_delete(request: Request, channel_id: Any) -> HTTPResponse:
    ok = await found(channel_ops.delete(gw(request), actor(request), str(channel_id)))
    flash(request, "Channel deleted" if ok else "Channel not found", "ok" if ok else "error")
    return redirect("/admin/channels")
