"""The floor of ``bench/abuse.py``: a process that answers ``/healthz`` as ``inventory serve`` does (uvicorn,
starlette, ``SELECT 1`` on a pool of its own) and does nothing else.

    python bench/bare_healthz.py PORT       (the database: INVENTORY_DATABASE_URL)

Measured beside the server under the same load, its p99 is what this machine allows any /healthz: the load
(Postgres and the server busy on every core) delays it however little its own process does.
"""

from __future__ import annotations

import os
import sys

import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from inventory.db import with_driver

own = create_async_engine(with_driver(os.environ["INVENTORY_DATABASE_URL"]), isolation_level="AUTOCOMMIT", pool_size=2)


async def healthz(request: Request) -> Response:
    async with own.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return JSONResponse({"status": "ok"})


if __name__ == "__main__":
    uvicorn.run(Starlette(routes=[Route("/healthz", healthz)]), port=int(sys.argv[1]), log_level="warning")
