"""SQLite storage for converger: connections, migrations, and one module per aggregate.

Knows nothing of HTTP, Sanic, aiohttp or the adapters. Store functions are synchronous,
take a ``sqlite3.Connection`` first and never commit: the caller owns the transaction.
"""
