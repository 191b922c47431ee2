"""The fixed set of targeted mutants: faults injected, one at a time, into a copy of the core.

Each mutant is one exact snippet of one file and its replacement. The snippet must occur exactly
once: when code moves (a refactor), ``python -m tests.mutants.run --check`` (and
tests/unit/test_mutants.py) fails naming the mutant, and the snippet is updated here to the
code's new place — the fault it injects stays the same.

``tests`` are tests that docs/guarantees.md cites (the runner checks it), most targeted first;
they run with ``pytest -x``, so the first to fail is the one that killed the mutant.
"""

from __future__ import annotations

from typing import NamedTuple


class Mutant(NamedTuple):
    name: str
    promise: str  # the promise of docs/guarantees.md it breaks
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "answer-before-commit",
        "a 2xx means committed: a job is answered only after COMMIT returns",
        "store/db.py",
        """                    results.append((loop, fut, None, value))
            conn.execute("COMMIT")""",
        """                    results.append((loop, fut, None, value))
                    self._resolve([(loop, fut, None, value)])  # MUTANT: answered first
            conn.execute("COMMIT")""",
        ("tests/unit/store/test_db.py::test_a_failed_commit_is_an_error_for_every_caller_never_a_success",),
    ),
    Mutant(
        "keep-a-failed-jobs-rows",
        "a job of a group commit that fails after writing leaves nothing behind (the others commit)",
        "store/db.py",
        """                    elif conn.total_changes != before:  # its rows cannot be undone alone""",
        """                    elif False:  # MUTANT: a failed job's rows are committed with the batch""",
        ("tests/unit/store/test_db.py::test_group_commit_isolates_a_failing_job",),
    ),
    Mutant(
        "skip-lease-rescue",
        "a lease that runs out on a running server is sent again",
        "gateway/workers/delivery.py",
        "if await ctx.db.write(queue.rescue_expired, ctx.now_iso()):",
        "if False:  # MUTANT: expired leases never reclaimed",
        ("tests/integration/delivery/test_lease.py::test_an_expired_lease_is_sent_again_with_the_same_webhook_id",),
    ),
    Mutant(
        "complete-without-claim-token",
        "every transition after a claim names its claim token (a stale attempt changes nothing)",
        "store/queue.py",
        """             WHERE id = ? AND claim_token = ?
         RETURNING {COLUMNS}\""",
        (now, provider_message_id, dumps(metadata or {}), now, delivery_id, token),""",
        """             WHERE id = ? AND (claim_token = ? OR 1)
         RETURNING {COLUMNS}\""",
        (now, provider_message_id, dumps(metadata or {}), now, delivery_id, token),""",
        ("tests/integration/delivery/test_lease.py::test_an_expired_lease_is_sent_again_with_the_same_webhook_id",),
    ),
    Mutant(
        "rate-limit-after-write",
        "activity creation is limited per tenant, checked before the write",
        "gateway/api/compat/activities.py",
        """    await ctx.rate_limit(request, "activity_create", tenant.id)
    body = decode(request, ActivityIn)""",
        """    body = decode(request, ActivityIn)
    _create = globals()["create"]  # MUTANT: the write first, the limit after it

    async def create(app, tenant_id, conversation_id, new):  # type: ignore[no-untyped-def]
        result = await _create(app, tenant_id, conversation_id, new)
        await ctx.rate_limit(request, "activity_create", tenant_id)
        return result""",
        ("tests/integration/ops/test_ratelimit.py::test_activity_creation_is_limited_per_tenant",),
    ),
    Mutant(
        "drop-tenant-filter",
        "a tenant's credentials never reach another tenant's conversations",
        "store/conversations.py",
        'f"SELECT {COLUMNS} FROM conversations WHERE id = ? AND tenant_id = ?",',
        'f"SELECT {COLUMNS} FROM conversations WHERE id = ? AND (tenant_id = ? OR 1)",',
        ("tests/integration/gateway/test_compat.py::test_tenant_isolation_every_route",),
    ),
    Mutant(
        "drop-tenant-filter-on-write",
        "a tenant's credentials never reach another tenant's conversations",
        "store/conversations.py",
        'WHERE c.id = ? AND c.tenant_id = ?"""\n',
        'WHERE c.id = ? AND (c.tenant_id = ? OR 1)"""\n',
        ("tests/integration/gateway/test_compat.py::test_tenant_isolation_every_route",),
    ),
    Mutant(
        "skip-idempotency-check",
        "a replay with the same X-Idempotency-Key returns the stored activity",
        "gateway/domain/activities.py",
        """    if new.idempotency_key is not None:
        existing = activities.by_idempotency_key(""",
        """    if False:  # MUTANT: no replay lookup
        existing = activities.by_idempotency_key(""",
        ("tests/integration/gateway/test_compat.py::test_idempotent_replay_returns_the_same_activity",),
    ),
    Mutant(
        "skip-signature-verification",
        "an inbound webhook's x-converger-signature is verified (constant time)",
        "adapters/signing.py",
        "    return hmac.compare_digest(converger_signature(secret, body).encode(), header_bytes(header))",
        "    return True  # MUTANT: any signature passes",
        ("tests/integration/delivery/test_inbound.py::test_signature_missing_invalid_valid",),
    ),
    Mutant(
        "drop-seq-increment",
        "seq is per conversation, gap-free and unique",
        "store/activities.py",
        "UPDATE conversations SET last_seq = last_seq + 1,",
        "UPDATE conversations SET last_seq = last_seq,",
        ("tests/unit/store/test_activities.py::test_seq_is_per_conversation",),
    ),
    Mutant(
        "gone-410-retried",
        "410 from a receiver is final",
        "adapters/webhook.py",
        "retryable=resp.status != 410,",
        "retryable=True,  # MUTANT",
        ("tests/integration/delivery/test_webhook_delivery.py::test_gone_fails_at_once",),
    ),
    Mutant(
        "sixth-attempt",
        "failed after 5 attempts",
        "store/queue.py",
        "MAX_ATTEMPTS = 5\n",
        "MAX_ATTEMPTS = 6  # MUTANT\n",
        ("tests/integration/delivery/test_webhook_delivery.py::test_five_failures_end_failed",),
    ),
    Mutant(
        "backoff-halved",
        "retries after 30/90/270/810 s",
        "store/queue.py",
        "    return float(3**attempts * 10)",
        "    return float(3**attempts * 5)  # MUTANT",
        ("tests/unit/store/test_queue.py::test_backoff_is_pure_and_follows_the_schedule",),
    ),
    Mutant(
        "broker-job-ignores-its-token",
        "a broker job claims its row only while the row still holds the job's token",
        "store/queue.py",
        """        match = "claim_token = ?"\n""",
        """        match = "(claim_token = ? OR 1 = 1)"  # MUTANT\n""",
        ("tests/unit/store/test_take_handed.py::test_a_job_claims_its_row_only_under_its_own_token",),
    ),
    Mutant(
        "slow-subscriber-kept",
        "a socket whose send queue is full is dropped; the others keep receiving",
        "gateway/hub.py",
        """            if not ok:
                self.dropped += 1""",
        """            if False:  # MUTANT: a full subscriber is kept
                self.dropped += 1""",
        ("tests/unit/gateway/test_hub.py::test_full_or_failing_subscribers_are_dropped_others_served",
         "tests/integration/realtime/test_fanout.py::test_a_stalled_socket_is_dropped_and_does_not_slow_50_others"),
    ),
    Mutant(
        "body-limit-off",
        "a request body is capped at CONVERGER_MAX_BODY_BYTES, else 413",
        "gateway/http.py",
        "    if len(body) > limit:\n",
        "    if False:  # MUTANT: no body cap\n",
        ("tests/integration/gateway/test_errors.py::test_oversize_body_is_413",),
    ),
    Mutant(
        "every-db-error-is-503",
        "only storage conditions are 503/507; any other database error stays a logged 500",
        "gateway/errors.py",
        "    if name.startswith(_STORAGE_UNAVAILABLE_PREFIXES):",
        "    if True:  # MUTANT: every database error blamed on the storage",
        ("tests/integration/hardening/test_bad_env.py::test_any_other_database_error_stays_a_logged_500",),
    ),
    Mutant(
        "no-restore-at-start",
        "serve restores a lost database from the replica",
        "gateway/replication.py",
        "        code, out = await asyncio.to_thread(restore, settings, if_missing=True)\n",
        '        code, out = 0, ""  # MUTANT: a lost database is not restored\n',
        ("tests/integration/ops/test_replication.py::test_restore_after_losing_the_database",),
    ),
    Mutant(
        "skip-alert-rescue",
        "health alerts follow the deliveries' rules: an expired lease is sent again",
        "gateway/workers/alerts.py",
        'self.rescuer = asyncio.create_task(self._rescue(), name="alert-rescuer")',
        "self.rescuer = None  # MUTANT: expired alert leases never reclaimed",
        ("tests/integration/ops/test_alerts.py::test_an_alert_whose_lease_runs_out_is_sent_again_on_the_running_server",),
    ),
    Mutant(
        "skip-provider-dedupe",
        "an inbound provider retry (same message id) creates nothing new",
        "store/activities.py",
        'f"SELECT {COLUMNS} FROM activities WHERE source_channel_id = ? AND external_id = ?",',
        'f"SELECT {COLUMNS} FROM activities WHERE source_channel_id = ? AND external_id = ? AND 0",',
        ("tests/integration/delivery/test_inbound.py::test_duplicate_message_id_is_ignored",),
    ),
    Mutant(
        "drop-token-scope",
        "a conversation token reaches only its own conversation",
        "gateway/auth.py",
        "    if scope is not None and scope != conversation_id:\n        raise errors.not_found()",
        "    if False:  # MUTANT: a conversation token reaches every conversation\n        raise errors.not_found()",
        ("tests/integration/hardening/test_isolation.py::test_conversation_tokens_reach_only_their_conversation",),
    ),
    Mutant(
        "upload-cap-off",
        "an upload is capped at CONVERGER_MAX_UPLOAD_BYTES",
        "gateway/api/converger/uploads.py",
        "    if len(part.body) > cap:",
        "    if False:  # MUTANT: no upload cap",
        ("tests/integration/realtime/test_uploads.py::test_upload_bad_inputs_and_size_cap",),
    ),
    Mutant(
        "directline-expired-401",
        "an expired token on the Direct Line mount is a 403 TokenExpired (the client recovers from 403 only)",
        "gateway/api/directline/auth.py",
        'raise errors.directline(403, "token_expired", "Token expired", "TokenExpired") from None',
        'raise errors.directline(401, "token_expired", "Token expired", "TokenExpired") from None',
        ("tests/integration/directline/test_api.py::test_bad_credentials_are_403_in_direct_lines_shape",),
    ),
    Mutant(
        "directline-replay-ignores-watermark",
        "a Direct Line stream opened with a watermark replays what came after it, once",
        "gateway/realtime/directline_socket.py",
        "load, self.claims[\"tenant_id\"], self.conversation_id, self.anchor, True,",
        "load, self.claims[\"tenant_id\"], self.conversation_id, None, True,  # MUTANT",
        ("tests/integration/directline/test_stream.py::test_reconnect_after_the_watermark_repeats_and_misses_nothing",),
    ),
)
