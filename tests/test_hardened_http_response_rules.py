"""How a fetched response is read (``common.hardened_http._read_body``): status, encoding, size, time.

The rules protect the token endpoint from a client's key server and a resource service from a
misbehaving issuer: no redirect is followed, a non-200 answer (but a 304 to a conditional
request) is an error that names the status, a compressed body is refused (it could expand past
the cap), the body is read in bounded chunks up to the caller's limit and never past it, and
the total deadline is checked between reads. Responses are urllib3's own ``HTTPResponse``
over an in-memory body, or a stand-in that fails the way a socket does.
"""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
import urllib3

from oauth_cc.common import hardened_http
from oauth_cc.common.hardened_http import FetchError

LIMIT = 100_000


def _read_body(response: Any, deadline: float, **kwargs: Any) -> bytes:
    return hardened_http._read_body(response, deadline, LIMIT, **kwargs)


def _response(body: bytes = b'{"keys": []}', *, status: int = 200, **headers: str) -> urllib3.HTTPResponse:
    return urllib3.HTTPResponse(
        body=io.BytesIO(body),
        headers={name.replace("_", "-"): value for name, value in headers.items()},
        status=status,
        preload_content=False,
    )


def _later() -> float:
    return time.monotonic() + 30


def _refused(response: Any, message: str, deadline: float | None = None) -> None:
    with pytest.raises(FetchError) as raised:
        _read_body(response, _later() if deadline is None else deadline)
    assert str(raised.value) == message


def test_a_200_answer_is_read_whole():
    assert _read_body(_response(b'{"keys": []}'), _later()) == b'{"keys": []}'


def test_a_body_of_several_chunks_is_joined_unchanged():
    body = bytes(range(256)) * 300  # 76,800 bytes: five reads
    assert _read_body(_response(body), _later()) == body


@pytest.mark.parametrize("status", [300, 301, 302, 307, 308, 399])
def test_redirects_are_refused_with_their_status(status):
    _refused(
        _response(b"", status=status, Location="https://elsewhere.example/"),
        f"the server answered with a redirect (HTTP {status}); use the final URL",
    )


@pytest.mark.parametrize("status", [201, 204, 299, 304, 400, 404, 500])
def test_other_non_200_answers_are_refused_with_their_status(status):
    _refused(_response(b"{}", status=status), f"the server answered HTTP {status}")


def test_a_304_is_read_when_the_request_was_conditional():
    assert _read_body(_response(b"", status=304), _later(), not_modified_ok=True) == b""
    with pytest.raises(FetchError, match="HTTP 302"):
        _read_body(_response(b"", status=302), _later(), not_modified_ok=True)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "gzip, identity"])
def test_a_compressed_body_is_refused(encoding):
    _refused(
        _response(b"\x1f\x8b\x08\x00", Content_Encoding=encoding),
        "the response is compressed; serve it uncompressed",
    )


@pytest.mark.parametrize("encoding", ["identity", "Identity", "IDENTITY"])
def test_an_identity_encoded_body_is_read(encoding):
    assert _read_body(_response(b'{"keys": []}', Content_Encoding=encoding), _later()) == b'{"keys": []}'


def test_a_declared_length_over_the_limit_is_refused_before_reading():
    class Unread(urllib3.HTTPResponse):
        def read1(self, *args: Any, **kwargs: Any) -> bytes:
            raise AssertionError("the body must not be read")

    response = Unread(body=io.BytesIO(b""), headers={"Content-Length": str(LIMIT + 1)}, status=200)
    _refused(response, f"the response is larger than {LIMIT} bytes")


def test_a_body_of_exactly_the_limit_is_accepted_with_its_declared_length():
    body = b"x" * LIMIT
    assert _read_body(_response(body, Content_Length=str(LIMIT)), _later()) == body


def test_a_body_of_exactly_the_limit_is_accepted_without_a_declared_length():
    body = b"y" * LIMIT
    assert _read_body(_response(body), _later()) == body


def test_an_undeclared_body_one_byte_over_the_limit_is_refused():
    _refused(_response(b"z" * (LIMIT + 1)), f"the response is larger than {LIMIT} bytes")


def test_a_body_longer_than_its_declared_length_is_still_cut_at_the_limit():
    _refused(
        _response(b"z" * (LIMIT + 5000), Content_Length="10"), f"the response is larger than {LIMIT} bytes"
    )


class _Recording(urllib3.HTTPResponse):
    """Records how much each read asked for; the server has far more than the limit to send."""

    def __init__(self, size: int) -> None:
        super().__init__(body=io.BytesIO(b"r" * size), headers={}, status=200, preload_content=False)
        self.asked: list[int] = []

    def read1(self, amt: int | None = None, decode_content: bool | None = None) -> bytes:
        self.asked.append(amt)  # type: ignore[arg-type]
        return super().read1(amt, decode_content=decode_content)


def test_reads_are_at_most_16_kib_and_never_take_more_than_one_byte_past_the_limit():
    response = _Recording(LIMIT * 3)

    _refused(response, f"the response is larger than {LIMIT} bytes")

    assert all(isinstance(amount, int) and 0 < amount <= 16 * 1024 for amount in response.asked)
    assert sum(response.asked) == LIMIT + 1
    assert response.asked[0] == 16 * 1024


def test_reading_stops_at_the_deadline(monkeypatch):
    class Clock:
        now = 1000.0

        @classmethod
        def monotonic(cls) -> float:
            return cls.now

    class Slow(urllib3.HTTPResponse):
        def read1(self, amt: int | None = None, decode_content: bool | None = None) -> bytes:
            Clock.now += 1.0  # each read brings one byte, one second later
            return b"{"

    monkeypatch.setattr(hardened_http, "time", Clock)
    response = Slow(body=io.BytesIO(b""), headers={}, status=200, preload_content=False)

    # The deadline is reached exactly after the third read: a fourth is not started.
    _refused(response, "timed out", deadline=1003.0)


def test_a_read_that_would_start_at_the_deadline_is_not_started(monkeypatch):
    class Clock:
        @staticmethod
        def monotonic() -> float:
            return 500.0

    monkeypatch.setattr(hardened_http, "time", Clock)
    _refused(_response(b"{}"), "timed out", deadline=500.0)


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out"), "timed out"),
        (urllib3.exceptions.ProtocolError("connection broken"), "the connection failed"),
        (ConnectionResetError(104, "reset"), "the connection failed"),
    ],
)
def test_a_failing_read_is_a_fetch_error_that_says_what_happened(error, message):
    class Failing(urllib3.HTTPResponse):
        def read1(self, amt: int | None = None, decode_content: bool | None = None) -> bytes:
            raise error

    _refused(Failing(body=io.BytesIO(b""), headers={}, status=200, preload_content=False), message)
