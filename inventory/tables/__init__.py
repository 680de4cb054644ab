"""SQL, one small module per table: the only place that table's statements are spelled.

Every function takes the psycopg connection keyword-only and never commits: the
caller owns the transaction (or runs in autocommit), so one scope's writes to
several tables land together or not at all.
"""
