"""The writes of each table, and the reads the sync, the workers and the CLI make of it: one small module
per table. The change feed's own statements are in ``inventory.feed``; the scoped reads of the faces (GraphQL,
and the others) are in ``inventory.read``.

Every function takes the psycopg connection keyword-only and never commits: the
caller owns the transaction (or runs in autocommit), so one scope's writes to
several tables land together or not at all.
"""
