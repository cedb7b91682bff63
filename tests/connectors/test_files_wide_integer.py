"""The files source's test for integers too long for 64 bits, which send a chunk line by line."""

from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from drivetrain.connectors.files import has_wide_integer

# The regex the files source used before: 19 digits or more after ``-:[,`` or a space
WIDE_INTEGER = re.compile(rb"[-:\[,\s]\d{19,}")

# bytes that matter (digits, the bytes that may come before a number, others) and runs of digits
_PIECES = st.one_of(
    st.sampled_from([b"0", b"9", b"5", b"-", b":", b"[", b",", b" ", b"\t", b"\n", b"\r", b"\x0b", b"\x0c",
                     b"a", b'"', b".", b"{", b"}", b"\xff"]),
    st.integers(min_value=1, max_value=45).map(lambda n: b"7" * n),
)


class TestHasWideInteger:
    @given(st.lists(_PIECES, max_size=40).map(b"".join))
    @example(b'{"id": 12345678901234567890}')
    @example(b'{"id": "a12345678901234567890"}')
    @example(b"12345678901234567890")
    @example(b"[" + b"1" * 50)
    @example(b"x" + b"1" * 40 + b",1234567890123456789")
    @example(b"x" + b"1" * 18 + b",")
    def test_agrees_with_the_regex(self, chunk: bytes) -> None:
        assert has_wide_integer(chunk) == (WIDE_INTEGER.search(chunk) is not None)

    def test_a_json_line_with_a_twenty_digit_id_is_wide(self) -> None:
        assert has_wide_integer(b'{"id": 1, "big": -12345678901234567890}\n')

    def test_an_eighteen_digit_id_is_not(self) -> None:
        assert not has_wide_integer(b'{"id": 123456789012345678}\n')
