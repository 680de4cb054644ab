"""ECR-compatible endpoint benchmark: DescribeImages through ``/ecr`` with boto3, over real HTTP.

    python bench/ecr_endpoint.py [--images 100000] [--requests 30]

One repository of ``--images`` images (the registry ``bench``), served by ``inventory serve``'s app on a
thread of this process; boto3 signs with an inventory access key. Prints, measured in one run:

- a 1,000-image DescribeImages page through the endpoint ÷ the same page by raw SQL (goal <= 3): the
  request signed by botocore's signer, sent with httpx and its JSON decoded (boto3's own parsing of the
  answer, the client's work, is shown beside it),
- the boto3 paginator over the whole repository (1,000 a page): wall ÷ the same pages through GraphQL's
  ``describeImages`` (the same fields) with httpx.

Uses INVENTORY_DATABASE_URL's server, else the embedded one; works in a scratch database.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import socket
import statistics
import threading
import time
from typing import Any

import boto3
import httpx
import uvicorn
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from scratch import run_script, scratch_database, settle
from sqlalchemy import text

from inventory.api.app import async_engine, create_app
from inventory.api.auth import new_token, token_hash
from inventory.db import create, driver_connection
from inventory.ecr import keys
from inventory.tables import api_tokens

ACCOUNT, REGION, REPOSITORY = "111111111111", "us-east-1", "team/service"
FILL = """
INSERT INTO registries (name, type, account_id, regions) VALUES ('bench', 'ecr', '111111111111', '{us-east-1}');
INSERT INTO repositories (registry_type, registry_id, region, repository_name, registry_name, repository_arn,
                          repository_uri, created_at)
  VALUES ('ecr', '111111111111', 'us-east-1', 'team/service', 'bench',
          'arn:aws:ecr:us-east-1:111111111111:repository/team/service',
          '111111111111.dkr.ecr.us-east-1.amazonaws.com/team/service', timestamptz '2026-01-01');
INSERT INTO images (registry_type, registry_id, region, repository_name, image_digest, image_tags,
                    image_size_in_bytes, image_pushed_at, image_status, image_manifest_media_type,
                    finding_severity_counts, image_scan_status)
  SELECT 'ecr', '111111111111', 'us-east-1', 'team/service', 'sha256:' || lpad(to_hex(i), 64, '0'),
         ARRAY['v' || i], 1048576 + i * 37, timestamptz '2026-01-01' + (i * interval '17 seconds'), 'ACTIVE',
         'application/vnd.oci.image.manifest.v1+json', '{"LOW": 3}', 'COMPLETE'
  FROM generate_series(1, :n) i;
UPDATE repositories SET image_count = :n;
"""
TARGET = "AmazonEC2ContainerRegistry_V20150921.DescribeImages"
RAW_PAGE = text(
    "SELECT * FROM images WHERE registry_type = 'ecr' AND registry_id = :account AND region = :region "
    "AND repository_name = :repository AND removed_at IS NULL AND (image_status = 'ACTIVE' OR image_status IS NULL) "
    "AND (coalesce(image_pushed_at, '-infinity'::timestamptz), image_digest) > (:pushed, :digest) "
    "ORDER BY coalesce(image_pushed_at, '-infinity'::timestamptz), image_digest LIMIT 1001"
)
"""The endpoint's page statement, spelt out: 1,001 images after a position, in push order."""
GRAPHQL = """query($token: String) { describeImages(region: "us-east-1", repositoryName: "team/service",
  registryId: "111111111111", maxResults: 1000, nextToken: $token) { nextToken imageDetails {
  registryId repositoryName imageDigest imageTags imageSizeInBytes imagePushedAt imageManifestMediaType imageStatus
  imageScanStatus { status } imageScanFindingsSummary { findingSeverityCounts { severity count } } } } }"""


class Served:
    """The app over HTTP on a free port, on a thread of this process."""

    def __init__(self, url: str) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(create_app(async_engine(url)), log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)
        self._thread.start()
        while not self._server.started:
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def credentials(engine: Any) -> tuple[dict[str, str], str]:
    """An access key and a bearer token, as ``inventory tokens create [--aws]`` stores them."""
    access_key_id = keys.new_access_key_id()
    secret = keys.secret_for(keys.server_key(), access_key_id)
    token = new_token()
    with engine.begin() as connection:
        raw = driver_connection(connection)
        api_tokens.create("bench-aws", token_hash(secret), scopes=["read"], registries=None, expires_at=None,
                          connection=raw, aws_access_key_id=access_key_id)  # fmt: skip
        api_tokens.create("bench", token_hash(token), scopes=["read"], registries=None, expires_at=None,
                          connection=raw)  # fmt: skip
    return {"aws_access_key_id": access_key_id, "aws_secret_access_key": secret}, token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    os.environ.setdefault(keys.SECRET_KEY_VARIABLE, base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    with scratch_database("inventory_bench_ecr") as scratch:
        engine = create(scratch.url)
        run_script(engine, FILL, n=args.images)
        settle(engine, "images", "repositories")
        aws_key, token = credentials(engine)
        served = Served(scratch.url)
        ecr = boto3.client("ecr", endpoint_url=f"{served.url}/ecr", region_name=REGION, **aws_key,
                           config=Config(retries={"max_attempts": 1}))  # fmt: skip
        position = {"registryId": ACCOUNT, "repositoryName": REPOSITORY, "maxResults": 1000}
        middle = ecr.describe_images(**position)["nextToken"]  # the page after the first: a keyset position
        first = ecr.describe_images(**position)["imageDetails"][-1]
        bound = {"account": ACCOUNT, "region": REGION, "repository": REPOSITORY,
                 "pushed": first["imagePushedAt"], "digest": first["imageDigest"]}  # fmt: skip

        endpoint_page, boto3_page, raw_page = [], [], []
        signer = SigV4Auth(Credentials(aws_key["aws_access_key_id"], aws_key["aws_secret_access_key"]), "ecr", REGION)
        with engine.connect() as connection, httpx.Client(timeout=60) as http:
            for turn in range(args.requests + 3):
                body = json.dumps(position | {"nextToken": middle})
                headers = {"X-Amz-Target": TARGET, "Content-Type": "application/x-amz-json-1.1"}
                request = AWSRequest(method="POST", url=f"{served.url}/ecr", data=body, headers=headers)
                started = time.perf_counter()
                signer.add_auth(request)
                answer = http.post(request.url, content=request.body, headers=dict(request.headers)).json()
                elapsed = time.perf_counter() - started
                assert len(answer["imageDetails"]) == 1000, answer
                started = time.perf_counter()
                assert len(ecr.describe_images(**position, nextToken=middle)["imageDetails"]) == 1000
                parsed = time.perf_counter() - started
                started = time.perf_counter()
                rows = connection.execute(RAW_PAGE, bound).all()
                raw = time.perf_counter() - started
                assert len(rows) == 1001 and rows[0].image_digest == answer["imageDetails"][0]["imageDigest"]
                if turn >= 3:
                    endpoint_page.append(elapsed)
                    boto3_page.append(parsed)
                    raw_page.append(raw)

        started = time.perf_counter()
        through_boto3 = sum(len(page["imageDetails"]) for page in ecr.get_paginator("describe_images").paginate(
            registryId=ACCOUNT, repositoryName=REPOSITORY, PaginationConfig={"PageSize": 1000}))  # fmt: skip
        boto3_wall = time.perf_counter() - started
        started = time.perf_counter()
        through_graphql, next_token = 0, None
        with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
            while True:
                body = client.post("/graphql", json={"query": GRAPHQL, "variables": {"token": next_token}}).json()
                page = body["data"]["describeImages"]
                through_graphql += len(page["imageDetails"])
                next_token = page["nextToken"]
                if next_token is None:
                    break
        graphql_wall = time.perf_counter() - started
        assert through_boto3 == through_graphql == args.images, (through_boto3, through_graphql)
        served.stop()
        engine.dispose()

    ms = 1000
    print(f"DescribeImages, 1,000 images: p50 {statistics.median(endpoint_page) * ms:.1f} ms through /ecr, "
          f"{statistics.median(raw_page) * ms:.1f} ms by raw SQL; {statistics.median(boto3_page) * ms:.1f} ms "
          "with boto3's parsing of the answer")  # fmt: skip
    ratio = statistics.median(endpoint_page) / statistics.median(raw_page)
    print(f"endpoint page ÷ raw SQL (p50):           {ratio:.2f}   (goal <= 3)")
    print(f"paginator over {args.images:,} images: {boto3_wall:.2f} s with boto3 on /ecr, {graphql_wall:.2f} s "
          f"through GraphQL describeImages")  # fmt: skip
    print(f"boto3 paginator ÷ GraphQL (wall):       {boto3_wall / graphql_wall:.2f}")


if __name__ == "__main__":
    main()
