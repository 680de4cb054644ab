"""History benchmark: the change feed, the inventory at a past time and a tag's history, on
1,000,000 images and ~5,000,000 events.

    python bench/history.py [--repositories 1000] [--requests 60] [--keep] [--reuse]

The data is written by SQL, shaped as the sync writes it (no sync runs through it): 1,000
repositories of 996 images, added by a first sync at T0 (backfill ``image.added`` events), then
four syncs T1 < T2 < T3 < T4 (12 days apart, the last two days ago). Each sync pushes one image
per repository (it takes the tags ``latest`` and ``staging``; the previous ``latest`` is promoted
to ``prod``, so ``prod`` moves at every sync), and, drawn anew for each image and sync, removes 5%
of the images, retags 20% (``rc-N``), rescans 94% (scan time, severity counts and vulnerability
source time change, as with continuous scanning) and restores half of the previous sync's
removals. Every changed or restored image gets its previous values in ``image_versions``
([changed_at, T)), its new ones in ``images`` and one event with ``changes`` = {field: [before,
after]}. The three big tables are UNLOGGED and get their secondary indexes once written (a scratch
database: reads are the same; the indexes are denser than ones grown by syncs).

Through the ASGI app (httpx, no network), samples taken in turns, p50/p99 of: ``events(first: 100)``
from the start and from ~90% deep; the present ``images(first: 100)`` page; ``images(first: 100,
asOf: T)`` early (T1 + 1 h), middle (between T2 and T3), recent (between T3 and T4: the present images
unchanged since T, about 1% of them, are neither few nor many, ``inventory.read.past.FEW``) and late (a
minute ago); ``tagHistory`` of ``prod`` (``first: 20``) and two digest lookups. Goals: events ÷ images
page <= 1.5, asOf page ÷ present page <= 3, tagHistory ÷ digest lookup <= 2.

Uses INVENTORY_DATABASE_URL's server, else the embedded one; works in a scratch database
(``--keep`` keeps it, ``--reuse`` measures a kept one without building it again).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, make_url, text

from inventory.api.app import async_engine, create_app
from inventory.api.schema import schema
from inventory.config import Settings
from inventory.db import create, database_url, migrate
from inventory.feed.query import EventFilter
from inventory.read import cursors

DATABASE = "inventory_bench_history"
ACCOUNT, REGION = "111111111111", "us-east-1"
BIG_TABLES = ("images", "image_events", "image_versions")
INITIAL, ROUNDS, BATCH = 996, 4, 100  # images per repository at first, later syncs, repositories per transaction
KEY = "registry_type, registry_id, region, repository_name, image_digest"
FIELDS = (
    "image_tags, image_size_in_bytes, image_pushed_at, image_scan_status, image_scan_status_description, "
    "image_scan_completed_at, vulnerability_source_updated_at, finding_severity_counts, image_manifest_media_type, "
    "artifact_media_type, last_recorded_pull_time, subject_manifest_digest, image_status, last_archived_at, "
    "last_activated_at"
)


def in_batch(table: str = "") -> str:
    """The images of the batch's repositories (a range of the primary key)."""
    t = f"{table}." if table else ""
    return (
        f"{t}registry_type = 'ecr' AND {t}registry_id = '{ACCOUNT}' AND {t}region = '{REGION}' "
        f"AND {t}repository_name BETWEEN :first_name AND :last_name"
    )


def repository(r: int) -> str:
    return f"team-{r:04}/service"


RUNS = f"""
INSERT INTO sync_runs (id, registry_name, registry_id, region, repository_name, status, started_at, finished_at)
SELECT :round * 100000 + r + 1, 'bench', '{ACCOUNT}', '{REGION}', 'team-' || lpad(r::text, 4, '0') || '/service',
       'succeeded', :t, :t + interval '1 second'
FROM generate_series(0, CAST(:repositories AS int) - 1) r
"""

REPOSITORIES_ADDED = """
INSERT INTO image_events (sync_run_id, registry_type, registry_id, region, repository_name, type, backfill, changes,
                          occurred_at)
SELECT id, 'ecr', registry_id, region, repository_name, 'repository.added', true, '{}', :t
FROM sync_runs WHERE started_at = :t ORDER BY id
"""

# Images j in [:j0, :j1) of each repository of the batch; tags sorted, as the sync stores them.
PUSH = f"""
INSERT INTO images ({KEY}, {FIELDS}, first_seen_at, last_seen_at, changed_at, updated_at, fingerprint)
SELECT 'ecr', '{ACCOUNT}', '{REGION}', 'team-' || lpad(r::text, 4, '0') || '/service',
       'sha256:' || md5(r || ':' || j) || md5(j || ':' || r),
       ARRAY['build-' || (j * 7919 + r * 104729) % 1000000]
         || CASE WHEN j = :latest THEN ARRAY['latest'] ELSE '{{}}' END
         || CASE WHEN j = :prod THEN ARRAY['prod'] ELSE '{{}}' END
         || CASE WHEN j = :staging THEN ARRAY['staging'] ELSE '{{}}' END
         || ARRAY['v' || j],
       1048576 + (j * 7919 + r * 31) % 2000000000, pushed, 'COMPLETE', 'The scan was completed successfully.',
       pushed + interval '3 minutes', pushed - interval '2 hours',
       jsonb_build_object('HIGH', j % 5, 'LOW', j * 7 % 40), 'application/vnd.oci.image.manifest.v1+json',
       'application/vnd.oci.image.config.v1+json', pushed + j % 30 * interval '1 hour', NULL, 'ACTIVE', NULL, NULL,
       :t, :t, :t, :t, decode(md5(r || '/' || j), 'hex')
FROM generate_series(CAST(:first_r AS int), CAST(:last_r AS int)) r,
     generate_series(CAST(:j0 AS int), CAST(:j1 AS int) - 1) j,
     LATERAL (SELECT :t - ((:j1 - j) * 3600 + r * 3) * interval '1 second' AS pushed) p
"""

# What one sync does to the stored images of the batch: slot, drawn anew for each image and sync, picks the action.
PLAN = f"""
CREATE TEMP TABLE plan ON COMMIT DROP AS
WITH stored AS MATERIALIZED (
  SELECT i.*, substr(repository_name, 6, 4)::int AS r,
         (SELECT substr(t, 2)::int FROM unnest(image_tags) t WHERE t ~ '^v[0-9]+$') AS j
  FROM images i WHERE {in_batch()}
), slotted AS MATERIALIZED (
  SELECT s.*, ('x' || left(md5(r || '/' || j || '@' || :round), 7))::bit(28)::int % 1000 AS slot,
         ('x' || left(md5(r || '/' || j || '@' || (:round - 1)), 7))::bit(28)::int % 1000 AS was
  FROM stored s
), planned AS (
  SELECT s.*, CASE
      WHEN removed_at IS NOT NULL THEN CASE WHEN removed_at = :previous AND was < 25 THEN 'restore' END
      WHEN j < 990 AND slot < 50 THEN 'remove'
      WHEN slot BETWEEN 50 AND 989 OR image_tags && ARRAY['latest', 'prod', 'staging'] OR j = :promoted THEN 'change'
    END AS action, what.*
  FROM slotted s, LATERAL (SELECT slot BETWEEN 50 AND 249 AS retag, slot BETWEEN 50 AND 989 AS rescan) what
)
SELECT {KEY}, action,
  CASE WHEN action = 'change' THEN ARRAY(
    SELECT DISTINCT t FROM unnest(image_tags || CASE WHEN retag THEN ARRAY[:rc] ELSE '{{}}' END
                                             || CASE WHEN j = :promoted THEN ARRAY['prod'] ELSE '{{}}' END) t
    WHERE t NOT IN ('latest', 'staging') AND (t <> 'prod' OR j = :promoted)
      AND NOT (retag AND t LIKE 'rc-%' AND t <> :rc)
    ORDER BY t) ELSE image_tags END AS new_tags,
  CASE WHEN action = 'change' AND rescan THEN :t - slot * interval '1 minute' ELSE image_scan_completed_at END
    AS new_completed,
  CASE WHEN action = 'change' AND rescan THEN :t - interval '2 hours' ELSE vulnerability_source_updated_at END
    AS new_source,
  CASE WHEN action = 'change' AND rescan
    THEN jsonb_build_object('HIGH', (j + :round) % 5, 'LOW', (j * 7 + :round * 3) % 40)
    ELSE finding_severity_counts END AS new_counts
FROM planned WHERE action IS NOT NULL
"""


def _change(field: str, new: str) -> str:
    """``field``'s entry of an event's changes: [before, after], null (stripped) when it did not change."""
    pair = f"jsonb_build_array(to_jsonb(i.{field}), to_jsonb(p.{new}))"
    return f"'{field}', CASE WHEN i.{field} IS DISTINCT FROM p.{new} THEN {pair} END"


CHANGES = (
    "jsonb_strip_nulls(jsonb_build_object("
    + ", ".join(
        _change(field, new)
        for field, new in (
            ("image_tags", "new_tags"),
            ("image_scan_completed_at", "new_completed"),
            ("vulnerability_source_updated_at", "new_source"),
            ("finding_severity_counts", "new_counts"),
        )
    )
    + "))"
)
_ADDED = "jsonb_build_object('image_tags', jsonb_build_array(NULL, to_jsonb(image_tags)))"

# One event per change, a repository's together (as each repository's sync writes them), before the images change.
EVENTS = f"""
INSERT INTO image_events (sync_run_id, {KEY}, type, backfill, changes, occurred_at)
SELECT run.id, e.registry_type, e.registry_id, e.region, e.repository_name, e.image_digest, e.type, :backfill,
       e.changes, :t
FROM ({{sources}}) e (registry_type, registry_id, region, repository_name, image_digest, type, changes)
JOIN sync_runs run ON run.repository_name = e.repository_name AND run.started_at = :t
ORDER BY e.repository_name, e.image_digest
"""
ADDED = f"SELECT {KEY}, 'image.added', {_ADDED} FROM images WHERE {in_batch()} AND first_seen_at = :t"
CHANGED = f"""
SELECT {", ".join(f"i.{c}" for c in KEY.split(", "))},
       CASE p.action WHEN 'change' THEN 'image.changed' WHEN 'restore' THEN 'image.restored' ELSE 'image.removed' END,
       CASE p.action
         WHEN 'remove' THEN jsonb_build_object('image_tags', jsonb_build_array(to_jsonb(i.image_tags), NULL))
         WHEN 'restore'
           THEN {CHANGES} || jsonb_build_object('image_tags', jsonb_build_array(NULL, to_jsonb(p.new_tags)))
         ELSE {CHANGES} END
FROM plan p JOIN images i USING ({KEY}) WHERE {in_batch("i")}
"""

VERSIONS = f"""
INSERT INTO image_versions ({KEY}, valid_from, valid_to, {FIELDS}, first_seen_at)
SELECT {", ".join(f"i.{c}" for c in KEY.split(", "))}, i.changed_at, coalesce(i.removed_at, :t),
       {", ".join(f"i.{c}" for c in FIELDS.split(", "))}, i.first_seen_at
FROM plan p JOIN images i USING ({KEY}) WHERE {in_batch("i")} AND p.action IN ('change', 'restore')
"""

_SAME_IMAGE = " AND ".join(f"i.{c} = p.{c}" for c in KEY.split(", "))
UPDATES = (
    f"""UPDATE images i SET image_tags = p.new_tags, image_scan_completed_at = p.new_completed,
      vulnerability_source_updated_at = p.new_source, finding_severity_counts = p.new_counts, removed_at = NULL,
      last_seen_at = :t, changed_at = :t, updated_at = :t
    FROM plan p WHERE {_SAME_IMAGE} AND {in_batch("i")} AND p.action IN ('change', 'restore')""",
    f"UPDATE images i SET removed_at = :t, updated_at = :t FROM plan p "
    f"WHERE {_SAME_IMAGE} AND {in_batch('i')} AND p.action = 'remove'",
)


def secondary_indexes(engine: Any) -> dict[str, str]:
    """Name → definition of the indexes of BIG_TABLES, but their primary keys."""
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
                 "WHERE indrelid = ANY(CAST(:tables AS regclass[])) AND NOT indisprimary ORDER BY 1"),
            {"tables": list(BIG_TABLES)},
        ).all()  # fmt: skip
    return dict(rows)  # type: ignore[arg-type]


def build(engine: Any, repositories: int) -> None:
    """The first sync at T0, then ROUNDS syncs; each in transactions of BATCH repositories."""
    with engine.connect() as connection:
        now = connection.execute(text("SELECT date_trunc('second', now())")).scalar_one()
    times = [now - timedelta(days=50) + timedelta(days=12 * k) for k in range(ROUNDS + 1)]
    indexes = secondary_indexes(engine)
    with engine.begin() as connection:
        # A scratch database: the tables written by the million skip the WAL (reads are the same either way),
        # and get their secondary indexes once written (random inserts into them would take most of the time).
        for table in BIG_TABLES:
            connection.execute(text(f"ALTER TABLE {table} SET UNLOGGED"))
        for name in indexes:
            connection.execute(text(f"DROP INDEX {name}"))
        connection.execute(text(f"INSERT INTO registries (name, type, account_id, regions) "
                                f"VALUES ('bench', 'ecr', '{ACCOUNT}', '{{{REGION}}}')"))  # fmt: skip
        connection.execute(
            text(
                "INSERT INTO repositories (registry_type, registry_id, region, repository_name, registry_name, "
                "first_seen_at, last_seen_at, last_synced_at) SELECT 'ecr', :account, :region, "
                "'team-' || lpad(r::text, 4, '0') || '/service', 'bench', :t, :t, :t FROM generate_series(0, :n - 1) r"
            ),
            {"account": ACCOUNT, "region": REGION, "t": times[0], "n": repositories},
        )
    for k, t in enumerate(times):
        started = time.perf_counter()
        with engine.begin() as connection:
            connection.execute(text(RUNS), {"round": k, "t": t, "repositories": repositories})
            if k == 0:
                connection.execute(text(REPOSITORIES_ADDED), {"t": t})
        for first in range(0, repositories, BATCH):
            with engine.begin() as connection:
                connection.execute(text("SET LOCAL work_mem = '256MB'"))  # sorts and joins of 100,000 rows in memory
                sync_batch(connection, k, times, first, min(first + BATCH, repositories) - 1)
        with engine.begin() as connection:  # the next sync's plans are made from fresh statistics
            connection.execute(text("ANALYZE images"))
        print(f"  sync {k} (T{k} = {t:%Y-%m-%d}) written in {time.perf_counter() - started:.0f} s", flush=True)
    with engine.begin() as connection:
        connection.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))
        started = time.perf_counter()
        for definition in indexes.values():
            connection.execute(text(definition))
        print(f"  {len(indexes)} indexes of {', '.join(BIG_TABLES)} made in {time.perf_counter() - started:.0f} s")
        connection.execute(text("SELECT setval(pg_get_serial_sequence('sync_runs', 'id'), max(id)) FROM sync_runs"))
        connection.execute(text("UPDATE repositories r SET image_count = c.n FROM (SELECT repository_name, "
                                "count(*) FILTER (WHERE removed_at IS NULL) AS n FROM images GROUP BY 1) c "
                                "WHERE r.repository_name = c.repository_name"))  # fmt: skip


def sync_batch(connection: Any, k: int, times: list[datetime], first_r: int, last_r: int) -> None:
    """Sync k of repositories first_r..last_r, in the caller's transaction."""
    t = times[k]
    names = {"first_name": repository(first_r), "last_name": repository(last_r), "t": t}
    push = {"first_r": first_r, "last_r": last_r, "t": t, "prod": 990, "staging": 993, "latest": 995}
    if k == 0:
        connection.execute(text(PUSH), {**push, "j0": 0, "j1": INITIAL})
        connection.execute(text(EVENTS.format(sources=ADDED)), {**names, "backfill": True})
        return
    promoted = INITIAL + k - 2  # the previous sync's push (``latest``) is promoted to prod
    connection.execute(
        text(PLAN),
        {**names, "round": k, "previous": times[k - 1], "promoted": promoted, "rc": f"rc-{k}"},
    )
    connection.execute(text("ANALYZE plan"))
    connection.execute(text(PUSH), {**push, "j0": INITIAL + k - 1, "j1": INITIAL + k, "latest": INITIAL + k - 1,
                                    "prod": -1, "staging": -1})  # fmt: skip
    connection.execute(text(EVENTS.format(sources=f"{CHANGED} UNION ALL {ADDED}")), {**names, "backfill": False})
    connection.execute(text(VERSIONS), names)
    for update in UPDATES:
        connection.execute(text(update), names)


# measuring ----------------------------------------------------------------------------

IMAGE = "registryId region repositoryName imageDigest imageTags imageSizeInBytes imagePushedAt imageStatus"
PRESENT = f"query {{ images(first: 100) {{ nextToken nodes {{ {IMAGE} }} }} }}"
PAST = f"query($asOf: DateTime!) {{ images(first: 100, asOf: $asOf) {{ nextToken nodes {{ {IMAGE} }} }} }}"
EVENTS_PAGE = """query($after: String) { events(first: 100, after: $after) { nextToken nodes { id type occurredAt
  registryId region repositoryName imageDigest backfill changes { field before after } tagsAdded tagsRemoved } } }"""
TAG_HISTORY = f"""query($repository: String!) {{ tagHistory(registryId: "{ACCOUNT}", region: "{REGION}",
  repositoryName: $repository, tag: "prod", first: 20) {{ nextToken nodes {{ imageDigest from until }} }} }}"""
DIGEST_SEARCH = f"""query($digest: String!) {{ images(filter: {{digests: [$digest]}}, first: 1) {{
  nodes {{ {IMAGE} }} }} }}"""
ONE_IMAGE = f"""query($repository: String!, $digest: String!) {{ image(registryId: "{ACCOUNT}", region: "{REGION}",
  repositoryName: $repository, imageDigest: $digest) {{ {IMAGE} }} }}"""

Request = tuple[str, dict[str, Any], Callable[[dict[str, Any]], bool]]


AS_OF = ("early", "middle", "recent", "late")
"""The past times measured, oldest first."""


def has_as_of() -> bool:
    """Whether ``images`` takes ``asOf`` yet (another change adds it)."""
    return "asOf" in schema._schema.query_type.fields["images"].args


def page(name: str) -> Callable[[dict[str, Any]], bool]:
    """A check that the answer holds a full page of ``name``."""
    return lambda data: len(data[name]["nodes"]) == 100


def requests(engine: Any, sample: str) -> dict[str, Request]:
    """What is timed, by name: (query, variables, a check of the answer's data)."""
    with engine.connect() as connection:
        times = connection.execute(text("SELECT DISTINCT started_at FROM sync_runs ORDER BY 1")).scalars().all()
        count = connection.execute(text("SELECT count(*) FROM image_events")).scalar_one()
        deep = connection.execute(  # setup only: OFFSET is fine here
            text("SELECT xid::text::bigint, id FROM image_events ORDER BY xid, id OFFSET :n LIMIT 1"),
            {"n": int(count * 0.9)},
        ).one()
        digest = connection.execute(
            text("SELECT image_digest FROM images WHERE repository_name = :name AND removed_at IS NULL "
                 "ORDER BY image_digest LIMIT 1"), {"name": sample}
        ).scalar_one()  # fmt: skip
    position = cursors.encode(cursors.binding("events", EventFilter()), list(deep))
    timed: dict[str, Request] = {
        "events, first page": (EVENTS_PAGE, {"after": None}, page("events")),
        "events, ~90% deep": (EVENTS_PAGE, {"after": position}, page("events")),
        "images, present": (PRESENT, {}, page("images")),
        "tagHistory (prod)": (TAG_HISTORY, {"repository": sample}, lambda d: len(d["tagHistory"]["nodes"]) > ROUNDS),
        "images(digests: [d])": (DIGEST_SEARCH, {"digest": digest}, lambda d: len(d["images"]["nodes"]) == 1),
        "image(digest)": (ONE_IMAGE, {"repository": sample, "digest": digest}, lambda d: d["image"] is not None),
    }
    if has_as_of():
        for name, at in (
            ("early", times[1] + timedelta(hours=1)),
            ("middle", times[2] + (times[3] - times[2]) / 2),
            ("recent", times[3] + (times[4] - times[3]) / 2),
            ("late", datetime.now(UTC) - timedelta(minutes=1)),
        ):
            timed[f"images, asOf {name}"] = (PAST, {"asOf": at.isoformat()}, page("images"))
    return timed


async def measure(url: str, timed: dict[str, Request], count: int) -> dict[str, list[float]]:
    """Samples taken in turns (one of each request per turn), so that a noisy moment hits them all."""
    api_engine = async_engine(url)
    samples: dict[str, list[float]] = {name: [] for name in timed}
    transport = httpx.ASGITransport(app=create_app(api_engine, allow_anonymous=True))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for warm_up in [True] * 5 + [False] * count:
            for name, (query, variables, check) in timed.items():
                started = time.perf_counter()
                response = await client.post("/graphql", json={"query": query, "variables": variables})
                elapsed = time.perf_counter() - started
                body = response.json()
                assert "errors" not in body and check(body["data"]), (name, body)
                if not warm_up:
                    samples[name].append(elapsed)
    await api_engine.dispose()
    return samples


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def shape(engine: Any) -> list[str]:
    with engine.connect() as connection:
        images = connection.execute(
            text("SELECT count(*), count(*) FILTER (WHERE removed_at IS NULL) FROM images")
        ).one()
        events = connection.execute(text("SELECT type, count(*) FROM image_events GROUP BY 1 ORDER BY 2 DESC")).all()
        versions = connection.execute(text("SELECT count(*) FROM image_versions")).scalar_one()
        size = connection.execute(text("SELECT pg_size_pretty(pg_database_size(current_database()))")).scalar_one()
    by_type = ", ".join(f"{kind} {n:,}" for kind, n in events)
    return [
        f"images:   {images[0]:,} ({images[1]:,} present, {images[0] - images[1]:,} removed)",
        f"events:   {sum(n for _, n in events):,} ({by_type})",
        f"versions: {versions:,}; database {size}",
    ]


def report(samples: dict[str, list[float]]) -> None:
    ms = 1000
    p50 = {name: statistics.median(values) for name, values in samples.items()}
    for name, values in samples.items():
        print(f"{name + ':':24}p50 {p50[name] * ms:6.1f} ms, p99 {percentile(values, 0.99) * ms:6.1f} ms")
    present = p50["images, present"]
    print(f"events page ÷ images first page (p50):   {p50['events, first page'] / present:.2f} first page, "
          f"{p50['events, ~90% deep'] / present:.2f} ~90% deep   (goal <= 1.5)")  # fmt: skip
    if "images, asOf early" in p50:
        past = ", ".join(f"{p50[f'images, asOf {t}'] / present:.2f} {t}" for t in AS_OF)
        print(f"images(asOf: T) ÷ present page (p50):    {past}   (goal <= 3)")
    else:
        print("images(asOf: T) ÷ present page (p50):    not measured: images takes no asOf argument yet")
    tag = p50["tagHistory (prod)"]
    print(f"tagHistory ÷ digest lookup (p50):        {tag / p50['images(digests: [d])']:.2f} vs images(filter: "
          f"{{digests}}), {tag / p50['image(digest)']:.2f} vs image(...)   (goal <= 2)")  # fmt: skip
    print("first apply ÷ COPY (bench/ingest.py):   not rerun here; compare its figure with the one before history "
          "(it may fall by a tenth of its value at most)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repositories", type=int, default=1000, help="of 1,000 images each (at the end)")
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--reuse", action="store_true", help="measure the kept scratch database, if there is one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="inventory-bench-") as scratch:
        server = database_url(Settings(home=Path(scratch) / "home"))
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": DATABASE}).first()
            reuse = args.reuse and exists is not None  # (a row of no columns would be false)
            if not reuse:
                connection.execute(text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
                connection.execute(text(f"CREATE DATABASE {DATABASE}"))
        url = make_url(server).set(database=DATABASE).render_as_string(hide_password=False)
        engine = create(url)
        try:
            migrate(engine)  # a kept database gets the migrations written since
            if not reuse:
                started = time.perf_counter()
                build(engine, args.repositories)
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                    connection.execute(text("VACUUM ANALYZE"))
                print(f"built in {time.perf_counter() - started:.0f} s, VACUUM ANALYZE included", flush=True)
            print("\n".join(shape(engine)), flush=True)
            timed = requests(engine, repository(42 % args.repositories))
            samples = asyncio.run(measure(url, timed, args.requests))
        finally:
            engine.dispose()
            if not args.keep:  # ~10 GB: not left behind, even by a failed run
                with admin.connect() as connection:
                    connection.execute(text(f"DROP DATABASE {DATABASE} WITH (FORCE)"))
            admin.dispose()
    report(samples)


if __name__ == "__main__":
    main()
