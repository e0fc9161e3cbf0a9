"""Properties of ``oauth_cc.common.jws.b64url_encode`` / ``b64url_decode``: strict, canonical base64url."""

from __future__ import annotations

import base64
import binascii

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from oauth_cc.common.jws import MalformedJWS, b64url_decode, b64url_encode

from .strategies import B64URL_ALPHABET


def lenient_decode(text: str) -> bytes | None:
    """What a forgiving decoder makes of ``text`` (padding added, stray characters skipped)."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


#: Strings near base64url: its alphabet, padding, the other alphabet, whitespace, anything.
base64ish = st.one_of(
    st.text(B64URL_ALPHABET),
    st.text(B64URL_ALPHABET + "=+/ \n\t."),
    st.binary().map(b64url_encode),
    st.binary().map(lambda data: base64.b64encode(data).decode("ascii")),
    st.binary().map(lambda data: base64.urlsafe_b64encode(data).decode("ascii")),
    st.text(),
)


@given(st.binary())
def test_b64url_decode_of_encode_is_the_identity_for_any_bytes(data: bytes) -> None:
    assert b64url_decode(b64url_encode(data)) == data


@given(st.binary())
def test_b64url_encode_writes_only_the_url_safe_alphabet_without_padding(data: bytes) -> None:
    encoded = b64url_encode(data)
    assert set(encoded) <= set(B64URL_ALPHABET)
    assert len(encoded) == -(-len(data) * 4 // 3)  # ceil(4n/3): no padding


@given(base64ish)
@example("QQ")  # canonical "A"
@example("QR")  # the same byte with a non-zero unused bit: a second spelling
@example("QQ==")  # padded
@example("Q")  # a length no byte string encodes to
@example("+/+/")  # the standard alphabet
@example("QU JD")  # whitespace inside
@example("٣٣")  # non-ASCII digits
def test_b64url_decode_accepts_exactly_the_one_canonical_spelling_of_each_value(text: str) -> None:
    """Either refused, or decoded to bytes whose encoding is exactly ``text``; never anything else.

    And nothing canonical is refused: ``text`` decodes exactly when a lenient decoder's result
    encodes back to ``text``.
    """
    try:
        decoded = b64url_decode(text)
    except MalformedJWS:
        lenient = lenient_decode(text)
        assert lenient is None or b64url_encode(lenient) != text
    else:
        assert isinstance(decoded, bytes)
        assert b64url_encode(decoded) == text


@given(st.binary(min_size=1), st.data())
def test_b64url_decode_refuses_every_other_spelling_of_the_same_bytes(
    data: bytes, draw: st.DataObject
) -> None:
    """Changing the unused low bits of the last character, or padding, gives a refusal."""
    canonical = b64url_encode(data)
    spellings = {canonical + "=" * (-len(canonical) % 4), canonical + "="}
    unused_bits = {2: 4, 3: 2}.get(len(canonical) % 4, 0)
    if unused_bits:
        value = B64URL_ALPHABET.index(canonical[-1])
        low = draw.draw(st.integers(1, (1 << unused_bits) - 1))
        spellings.add(canonical[:-1] + B64URL_ALPHABET[value | low])
    for spelling in spellings - {canonical}:
        assert lenient_decode(spelling) in (data, None)
        with pytest.raises(MalformedJWS):
            b64url_decode(spelling)
