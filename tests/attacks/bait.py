"""Bait for key-injection attacks: a local server offering the attacker's keys, and a certificate.

A verifier that followed a ``jku``/``x5u`` header would fetch from :class:`KeyBait`; the tests
assert it never gets a request.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import threading
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID


class KeyBait:
    """A local HTTP server offering the attacker's keys; counts every request it receives."""

    def __init__(self, document: dict[str, Any]) -> None:
        bait = self
        self.hits = 0
        body = json.dumps(document).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                bait.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/keys"
        # A short poll interval: shutdown() waits for the serving loop to notice.
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)

    def __enter__(self) -> KeyBait:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def self_signed_certificate(private_key: Any) -> str:
    """A base64 (not base64url: RFC 7515 §4.1.6) DER certificate for ``private_key``."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "holder")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(private_key, hashes.SHA256())
    )
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode("ascii")
