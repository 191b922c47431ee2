"""SLA targets per tier (issue 21, docs/admin.md#sla-tiers): the delivery success rate and the
p90 of accepted → sent a tier promises; an hour that misses one on a channel raises the tenant's
alert webhook (``sla_breach``). Empty: no target. The seeded ``standard`` and ``priority`` tiers
get targets; ``free`` none."""

from sqlite_utils import Database

from . import execute_all

STATEMENTS = [
    "ALTER TABLE sla_tiers ADD COLUMN target_success_rate REAL",
    "ALTER TABLE sla_tiers ADD COLUMN target_sent_p90_ms INTEGER",
    """UPDATE sla_tiers SET target_success_rate = 0.95, target_sent_p90_ms = 30000
        WHERE id = '00000000-0000-4000-8000-00000000f002'""",
    """UPDATE sla_tiers SET target_success_rate = 0.99, target_sent_p90_ms = 5000
        WHERE id = '00000000-0000-4000-8000-00000000f003'""",
]


def up(db: Database) -> None:
    execute_all(db, STATEMENTS)
