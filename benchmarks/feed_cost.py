"""What one read of the issuer's revocation feed costs with many revoked tokens.

In-process (Django's test client, the test settings, an in-memory SQLite database): store
``--jtis`` revoked tokens (100,000 by default), publish the revocation state, then read
``/oauth/revocation-feed/`` as a client allowed to introspect, ``--reads`` times unconditionally
(200) and ``--reads`` times with the ETag of the first answer (304). Prints the body size and the
median milliseconds per request of each, client authentication (HTTP Basic) included, and the
time of the first read after the change (which builds the body).

    PYTHONPATH=$PWD python benchmarks/feed_cost.py               # this checkout
    PYTHONPATH=/other/checkout python benchmarks/feed_cost.py    # another one, same script

Nothing is sent over the network and no database but the in-memory one is touched.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

FEED = "/oauth/revocation-feed/"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jtis", type=int, default=100_000, help="revoked tokens stored")
    p.add_argument("--reads", type=int, default=30, help="requests measured per kind")
    return p.parse_args(argv)


def median_ms(request: Any, reads: int, expected: int) -> float:
    times = []
    for _ in range(reads):
        started = time.perf_counter()
        response = request()
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == expected, (response.status_code, response.content[:200])
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ.pop("DATABASE_URL", None)  # the in-memory SQLite database
    sys.path.insert(0, str(Path.cwd()))
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.utils import timezone

    import oauth_cc
    from oauth_cc.issuer import audit, clients, revocation
    from oauth_cc.models import RevokedToken

    setup_test_environment()
    connection.creation.create_test_db(verbosity=0)
    application, issued = clients.create_client(
        "feed-reader", scopes=[], audiences=[], can_introspect=True, actor=audit.command_actor()
    )
    expires = timezone.now() + timedelta(hours=1)
    RevokedToken.objects.bulk_create(
        [
            RevokedToken(jti=secrets.token_urlsafe(16), client_id="c", expires_at=expires)
            for _ in range(args.jtis)
        ],
        batch_size=5000,
    )
    revocation.publish()
    pair = f"{application.client_id}:{issued.secret}".encode()
    auth = "Basic " + base64.b64encode(pair).decode()
    client = Client()
    client.get(FEED)  # warm up the URL resolver and the middleware (a 401)
    started = time.perf_counter()
    first = client.get(FEED, HTTP_AUTHORIZATION=auth)
    first_ms = (time.perf_counter() - started) * 1000
    etag = first["ETag"]
    full = median_ms(lambda: client.get(FEED, HTTP_AUTHORIZATION=auth), args.reads, 200)
    unchanged = median_ms(
        lambda: client.get(FEED, HTTP_AUTHORIZATION=auth, HTTP_IF_NONE_MATCH=etag), args.reads, 304
    )
    print(f"oauth_cc from {Path(oauth_cc.__file__).parent}")
    print(f"{args.jtis} revoked jtis, body {len(first.content)} bytes, median of {args.reads} reads:")
    print(f"  first read after the change: {first_ms:.1f} ms")
    print(f"  200: {full:.1f} ms/request")
    print(f"  304: {unchanged:.1f} ms/request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
