"""The ``converger`` command: serve (default), deliver, migrate, tenant, channel, admin, settings, version."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
from collections.abc import Awaitable
from typing import Any, TypeVar

from store.upgrade import SchemaTooNew

from . import __version__, config
from .domain import SYSTEM
from .domain.users import ADMIN_ROLES
from .tokens import secret_version

T = TypeVar("T")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="data directory (CONVERGER_DATA_DIR)")
    p.add_argument("--db", help="database file (CONVERGER_DB)")
    p.add_argument("--database-url",
                   help="PostgreSQL instead of the SQLite file (CONVERGER_DATABASE_URL)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="converger", description="Multi-tenant conversation gateway.")
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve", help="run the gateway (default)")
    _common(serve)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers",
                       help="processes serving the port: a number, or auto (CONVERGER_WORKERS)")
    serve.add_argument("--dev", action="store_true",
                       help="create a dev tenant, echo channel and admin token; print them")
    serve.add_argument("--domain", action="append",
                       help="serve HTTPS for this domain with an ACME certificate (repeatable; "
                            "CONVERGER_DOMAINS)")
    serve.add_argument("--http-port", type=int, help="plain-HTTP port with HTTPS on (default 80)")
    serve.add_argument("--https-port", type=int, help="HTTPS port (default 443)")
    serve.add_argument("--tls-cert", help="serve HTTPS with this certificate chain (PEM)")
    serve.add_argument("--tls-key", help="the private key of --tls-cert (PEM)")

    dv = sub.add_parser("deliver", help="run delivery workers only (no HTTP) for the broker "
                                        "pipeline (CONVERGER_PIPELINE=rabbitmq|nats)")
    _common(dv)
    dv.add_argument("--concurrency", type=int,
                    help="delivery workers in this process (CONVERGER_DELIVERY_CONCURRENCY)")

    bk = sub.add_parser("backup", help="snapshot the database (safe while the gateway runs)")
    _common(bk)
    bk.add_argument("file", help="where to write the snapshot (must not exist)")

    from .service import add_parser as add_service_parser

    add_service_parser(sub)

    mig = sub.add_parser("migrate", help="apply pending database migrations and exit")
    _common(mig)

    tenant = sub.add_parser("tenant", help="manage tenants")
    tsub = tenant.add_subparsers(dest="action", required=True)
    tc = tsub.add_parser("create", help="create a tenant; prints its API key once")
    tc.add_argument("name")
    tc.add_argument("--alert-webhook-url")
    _common(tc)
    tl = tsub.add_parser("list")
    _common(tl)

    channel = sub.add_parser("channel", help="manage channels")
    csub = channel.add_subparsers(dest="action", required=True)
    cc = csub.add_parser("create", help="create a channel; prints its secret once and a token")
    cc.add_argument("--tenant", required=True, help="tenant id")
    cc.add_argument("--name", required=True)
    cc.add_argument("--type", default="webhook")
    cc.add_argument("--mode")
    cc.add_argument("--config", default="{}", help="config as JSON")
    _common(cc)
    cl = csub.add_parser("list")
    cl.add_argument("--tenant")
    _common(cl)

    admin = sub.add_parser("admin", help="admin users and admin tokens")
    asub = admin.add_subparsers(dest="action", required=True)
    auc = asub.add_parser("create", help="create an admin user for the admin panel")
    auc.add_argument("--email", required=True)
    auc.add_argument("--name", required=True)
    auc.add_argument("--role", default="super_admin", choices=ADMIN_ROLES)
    auc.add_argument("--password-stdin", action="store_true",
                     help="read the password from standard input (else prompt for it)")
    _common(auc)
    tok = asub.add_parser("token", help="admin API tokens")
    toksub = tok.add_subparsers(dest="token_action", required=True)
    tokc = toksub.add_parser("create", help="create an admin API token; prints it once")
    tokc.add_argument("--name", default="cli")
    tokc.add_argument("--role", default="super_admin", choices=ADMIN_ROLES)
    _common(tokc)

    rs = sub.add_parser("restore", help="restore the database from the Litestream replica")
    _common(rs)
    rs.add_argument("--to", help="write the restored database here (default: the database path)")
    rs.add_argument("--timestamp", help="point in time to restore to (RFC 3339, e.g. 2026-01-02T03:04:05Z)")
    rs.add_argument("--replica-url", help="replica to restore from (CONVERGER_REPLICA_URL)")
    rs.add_argument("--force", action="store_true", help="overwrite an existing file")

    dbp = sub.add_parser("db", help="move a deployment between SQLite and PostgreSQL")
    dbsub = dbp.add_subparsers(dest="action", required=True)
    dbc = dbsub.add_parser("copy", help="copy every table into an empty database, then verify "
                                        "counts and checksums (docs/scaling.md)")
    dbc.add_argument("--from", dest="source", required=True,
                     help="a SQLite file or a postgresql:// URL")
    dbc.add_argument("--to", dest="target", required=True,
                     help="a SQLite file or a postgresql:// URL (empty)")

    st = sub.add_parser("settings", help="print the settings table")
    st.add_argument("--markdown", action="store_true")

    sub.add_parser("version", help="print versions")
    return parser


def _settings(args: argparse.Namespace, **extra: Any) -> config.Settings:
    return config.load(data_dir=getattr(args, "data_dir", None), db=getattr(args, "db", None),
                       database_url=getattr(args, "database_url", None), **extra)


class _Offline:
    """A ``Gateway`` without a server (no workers: what a command enqueues waits for the next
    start), for CLI commands: they call the same domain operations as the API."""

    def __init__(self, settings: config.Settings) -> None:
        from .app import open_database
        from .context import Gateway

        self.gw = Gateway.create(settings)
        self.db, self.applied = open_database(settings)
        self.gw.attach(self.db)
        self.cipher, self.tokens, self.now = self.gw.cipher, self.gw.tokens, self.gw.now_iso
        self.settings = settings

    def dev_admin_token(self) -> str:
        """``serve --dev``'s admin token: the same on every start with the same secret key."""
        import base64
        import hashlib
        import hmac

        from .crypto import secret_key

        mac = hmac.new(secret_key(self.settings).encode(), b"converger serve --dev admin token",
                       hashlib.sha256).digest()
        return "cva_" + base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def run(self, op: Awaitable[T]) -> T:
        """Run one domain operation to its end."""
        async def main() -> T:
            return await op

        return asyncio.run(main())

    def close(self) -> None:
        self.gw.detach()
        self.db.close()


def cmd_db_copy(args: argparse.Namespace) -> int:
    """``converger db copy --from X --to Y``: the copy, then its report (exit 1 on a mismatch)."""
    import time

    from store import copy

    started = time.monotonic()
    try:
        reports = copy.copy(args.source, args.target,
                            progress=lambda t: print(f"copied {t}", file=sys.stderr))
    except copy.CopyError as exc:
        return _fail(f"db copy: {exc}")
    for line in copy.report_lines(reports):
        print(line)
    bad = [r.table for r in reports if not r.ok]
    rows = sum(r.target_rows for r in reports)
    if bad:
        print(f"db copy: MISMATCH in {', '.join(bad)}", file=sys.stderr)
        return 1
    print(f"db copy: {len(reports)} tables, {rows} rows copied and verified in "
          f"{time.monotonic() - started:.1f}s")
    return 0


def _fail(message: str) -> int:
    print(f"converger: {message}", file=sys.stderr)
    return 2


def cmd_version() -> int:
    import sanic

    print(f"converger {__version__}")
    print(f"python {sys.version.split()[0]}")
    print(f"sanic {sanic.__version__}")
    print(f"sqlite {sqlite3.sqlite_version}")
    try:
        from .litestream import version as ls_version

        print(f"litestream {ls_version()}")
    except Exception:
        print("litestream not bundled")
    return 0


def dev_setup(off: _Offline) -> dict[str, str]:
    """Create (once) a dev tenant, echo channel and admin token; return the credentials."""
    from store import admin_tokens, channels, tenants

    from .crypto import sha256_hex
    from .domain import admin_tokens as token_ops
    from .domain import channels as channel_ops
    from .domain import tenants as tenant_ops

    def tx(conn: sqlite3.Connection) -> dict[str, str]:
        # One transaction (the domain's transaction steps, not its operations): all or nothing.
        existing = tenants.by_name(conn, "dev")
        out: dict[str, str] = {}
        if existing:
            tenant, api_key = tenant_ops.rotate_key_tx(conn, existing[0].id, SYSTEM, off.now())
        else:
            tenant, api_key = tenant_ops.create_tx(conn, "dev", None, "active", SYSTEM, off.now())
        chans = [c for c in channels.for_tenant(conn, tenant.id) if c.name == "dev-echo"]
        if chans:
            channel = chans[0]
        else:
            channel, _ = channel_ops.create_tx(
                conn, off.cipher, tenant_id=tenant.id, name="dev-echo", type="echo", mode="outbound",
                config={}, transformations=[], status="active", actor=SYSTEM, now=off.now(),
            )
        # The same admin token on every start (derived from the secret key), created once:
        # restarts neither pile up super_admin tokens nor break a developer's scripts.
        admin_token = off.dev_admin_token()
        if admin_tokens.by_hash(conn, sha256_hex(admin_token)) is None:
            token_ops.create_tx(conn, "dev", "super_admin", SYSTEM, off.now(), admin_token)
        out.update(tenant_id=tenant.id, api_key=api_key, channel_id=channel.id,
                   channel_token=off.tokens.channel_token(channel.id, tenant.id,
                                                         sv=secret_version(channel)),
                   admin_token=admin_token)
        return out

    return off.db.write_sync(tx)


def cmd_serve(args: argparse.Namespace) -> int:
    from .supervisor import worker_identity

    if worker_identity() is not None:  # a worker started by the supervisor: no prelude
        from .server import run_worker

        return run_worker()
    settings = _settings(args, host=args.host, port=args.port, workers=args.workers,
                         domains=",".join(args.domain) if args.domain else None,
                         http_port=args.http_port, https_port=args.https_port,
                         tls_cert=args.tls_cert, tls_key=args.tls_key)
    from . import upgrades
    from .preflight import check

    problem = (check(settings) or upgrades.prepare_database(settings)
               or upgrades.tls_preflight(settings))
    if problem:
        return _fail(problem)
    if args.dev and settings.replica_url:
        # --dev writes to the database: restore a missing one from the replica first.
        from . import replication

        code, out = replication.restore(settings, if_missing=True)
        if code != 0:
            return _fail(f"restore failed: {out}")
    if args.dev:
        off = _Offline(settings)
        try:
            creds = dev_setup(off)
        finally:
            off.close()
        base = settings.public_url or f"http://{settings.host}:{settings.port}"
        print("converger dev setup (credentials are shown once):")
        print(f"  URL            {base}")
        print(f"  tenant id      {creds['tenant_id']}")
        print(f"  API key        {creds['api_key']}")
        print(f"  echo channel   {creds['channel_id']}")
        print(f"  channel token  {creds['channel_token']}")
        print(f"  admin token    {creds['admin_token']}")
        sys.stdout.flush()
    from .server import run

    return run(settings)


def cmd_deliver(args: argparse.Namespace) -> int:
    """``converger deliver``: the broker pipeline's delivery workers without the HTTP server
    (docs/pipelines.md#running-converger-deliver). Runs until SIGTERM / SIGINT."""
    import signal

    settings = _settings(args, delivery_concurrency=args.concurrency)
    if settings.pipeline not in config.BROKER_PIPELINES:
        return _fail("deliver needs a broker pipeline: CONVERGER_PIPELINE=rabbitmq or nats, "
                     "with CONVERGER_PIPELINE_URL (docs/pipelines.md)")
    from . import logs
    from .app import open_database
    from .context import Gateway
    from .workers.broker import BrokerDelivery, redact

    log = logs.configure(settings.log_level)
    gw = Gateway.create(settings, log)
    db, _ = open_database(settings)
    gw.attach(db)
    from .ratelimit import DeliveryLimiter

    # Per-channel pacing (CONVERGER_RATE_LIMIT_DELIVERIES, a tier's deliveries_per_min): per process.
    gw.delivery_limiter = DeliveryLimiter(settings.rate_limit_deliveries)
    engine = BrokerDelivery(gw, consume=True)
    gw.delivery = engine

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await engine.start()
        log.info("deliver: %d workers for %s (%s)", engine.concurrency, redact(settings.pipeline_url),
                 settings.pipeline)
        await stop.wait()
        log.info("deliver: stopping")
        await engine.stop()
        # What the broker clients still run after closing (their close callbacks) ends first.
        deadline = loop.time() + 5
        while (rest := [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]) \
                and loop.time() < deadline:
            await asyncio.wait(rest, timeout=deadline - loop.time())

    try:
        asyncio.run(main())
    finally:
        gw.detach()
        db.close()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    off = _Offline(_settings(args))
    off.close()
    print("applied: " + (", ".join(off.applied) or "nothing (up to date)"))
    return 0


def cmd_tenant(args: argparse.Namespace) -> int:
    from store import tenants

    from .domain import ValidationFailed
    from .domain import tenants as tenant_ops

    off = _Offline(_settings(args))
    try:
        if args.action == "create":
            try:
                tenant, key = off.run(tenant_ops.create(off.gw, SYSTEM, name=args.name,
                                                        alert_webhook_url=args.alert_webhook_url))
            except ValidationFailed as exc:
                return _fail(exc.detail)
            print(json.dumps({"id": tenant.id, "name": tenant.name, "api_key": key}, indent=2))
        else:
            items, _ = off.db.read_sync(lambda c: tenants.list_page(c, limit=500))
            for t in items:
                print(f"{t.id}  {t.status:8}  {t.name}")
    finally:
        off.close()
    return 0


def cmd_channel(args: argparse.Namespace) -> int:
    from store import channels

    from .domain import ValidationFailed
    from .domain import channels as channel_ops

    off = _Offline(_settings(args))
    try:
        if args.action == "create":
            try:
                cfg = json.loads(args.config)
            except json.JSONDecodeError as exc:
                return _fail(f"--config is not JSON: {exc}")
            try:
                channel, secret = off.run(channel_ops.create(
                    off.gw, SYSTEM, tenant_id=args.tenant, name=args.name, type=args.type,
                    mode=args.mode, config=cfg))
            except ValidationFailed as exc:
                return _fail(f"{exc.detail} {json.dumps({'errors': exc.fields})}")
            print(json.dumps({
                "id": channel.id, "name": channel.name, "type": channel.type, "mode": channel.mode,
                "secret": secret, "token": off.tokens.channel_token(
                    channel.id, channel.tenant_id, sv=secret_version(channel)),
            }, indent=2))
        else:
            items, _ = off.db.read_sync(lambda c: channels.list_page(c, tenant_id=args.tenant, limit=500))
            for c in items:
                print(f"{c.id}  {c.tenant_id}  {c.type:16} {c.mode:8} {c.status:8} {c.name}")
    finally:
        off.close()
    return 0


def cmd_admin_create(args: argparse.Namespace) -> int:
    """``converger admin create``: the first (or another) admin user, no default password."""
    import getpass

    from .domain import ValidationFailed
    from .domain import users as user_ops

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Again: "):
            return _fail("the passwords differ")
    off = _Offline(_settings(args))
    try:
        user = off.run(user_ops.create_admin(off.gw, SYSTEM, email=args.email, name=args.name,
                                             password=password, role=args.role))
    except ValidationFailed as exc:
        return _fail("; ".join(f"{k} {', '.join(v)}" for k, v in exc.fields.items()))
    finally:
        off.close()
    print(f"created {user.role} {user.email}")
    return 0


def cmd_admin(args: argparse.Namespace) -> int:
    from .domain import ValidationFailed
    from .domain import admin_tokens as token_ops

    if args.action == "create":
        return cmd_admin_create(args)
    off = _Offline(_settings(args))
    try:
        try:
            _, token = off.run(token_ops.create(off.gw, SYSTEM, name=args.name, role=args.role))
        except ValidationFailed as exc:  # e.g. a blank name: a message, not a traceback
            return _fail(exc.detail)
    finally:
        off.close()
    print(token)
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from .upgrades import backup

    problem = backup(_settings(args), args.file)
    return _fail(problem) if problem else 0


def cmd_restore(args: argparse.Namespace) -> int:
    from pathlib import Path

    from . import replication

    settings = _settings(args, replica_url=args.replica_url)
    if not settings.replica_url:
        return _fail("no replica configured (CONVERGER_REPLICA_URL or --replica-url)")
    target = Path(args.to) if args.to else settings.db_path
    if target.exists() and not args.force:
        return _fail(f"{target} exists; pass --force to overwrite it (stop the server first)")
    code, out = replication.restore(settings, output=target, timestamp=args.timestamp,
                                    force=args.force)
    if out:
        print(out)
    if code != 0:
        return _fail(f"restore failed (litestream exit {code})")
    print(f"restored {replication.redact_url(settings.replica_url)} → {target}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "serve"
    if args.command is None:
        args = parser.parse_args(["serve", *(argv or sys.argv[1:])])
    if command not in ("service", "settings"):
        # What the gateway creates is its own: the data directory 0700; the database, its WAL,
        # the generated key and uploads 0600 (issue 13). Existing ones: gateway.app tightens.
        os.umask(0o077)
    try:
        if command == "serve":
            return cmd_serve(args)
        if command == "migrate":
            return cmd_migrate(args)
        if command == "deliver":
            return cmd_deliver(args)
        if command == "tenant":
            return cmd_tenant(args)
        if command == "channel":
            return cmd_channel(args)
        if command == "admin":
            return cmd_admin(args)
        if command == "restore":
            return cmd_restore(args)
        if command == "backup":
            return cmd_backup(args)
        if command == "db":
            return cmd_db_copy(args)
        if command == "service":
            from .service import main as service_main

            return service_main(args)
        if command == "settings":
            # markdown() ends with a newline already: the file it writes is byte-identical.
            sys.stdout.write(config.markdown() if args.markdown else "\n".join(
                f"{s.name}: {', '.join(s.env)} (default {s.default!r})" for s in config.SETTINGS) + "\n")
            return 0
        if command == "version":
            return cmd_version()
    except config.ConfigError as exc:
        return _fail(str(exc))
    except SchemaTooNew as exc:  # a CLI command on a database from a newer version
        return _fail(str(exc))
    parser.print_help()
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
