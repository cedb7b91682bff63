"""The rows of a streamed pymysql result read off the connection in bulk, as Arrow binary columns.

pymysql parses every row packet in Python, field by field (a length prefix, a slice, a tuple):
about 0.7 microseconds per value, which was most of the pymysql reader's time. Here, once pymysql
has sent the statement and read the result's column descriptions (``SSCursor.execute``), the row
packets are read from the connection's socket in chunks of a megabyte; Python only walks the
packet headers (one step per row), and the values are cut out of the chunk column by column by
Arrow kernels: the length prefixes of one column for every row of the batch at once, then one
``take`` that copies the values into a binary array. The values are the bytes pymysql would
have returned with ``use_unicode=False`` and no converters (the text protocol sends every value
as a length-prefixed string, NULL as 0xFB), so the column decoders of
:mod:`~drivetrain.connectors.mysql.types` turn them into the same Arrow values.

What pymysql checks is checked here too: packet sequence numbers, an error packet mid-stream
(raised as pymysql raises it), a connection that closes or times out (pymysql's "Lost connection"
error, 2013), a row that does not hold exactly its columns. Rows longer than 16 MB (split over
several packets) are joined. At the end pymysql's state is left as its own reader leaves it, so
the cursor and the connection close as usual.
"""

from __future__ import annotations

import errno
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

#: Bytes asked of the socket per read.
CHUNK = 1 << 20
#: Payload length of a packet that continues in the next one.
MAX_PACKET = 0xFFFFFF
_NULL, _LEN2, _LEN3, _LEN8, _EOF, _ERR = 0xFB, 0xFC, 0xFD, 0xFE, 0xFE, 0xFF
_LOST = 2013  # CR_SERVER_LOST


def supported(conn: Any, cursor: Any) -> bool:
    """Whether this pymysql connection and unbuffered cursor expose what the reader needs."""
    result = getattr(cursor, "_result", None)
    return (
        hasattr(conn, "_rfile")
        and hasattr(conn, "_next_seq_id")
        and result is not None
        and getattr(result, "unbuffered_active", False) is True
        and isinstance(getattr(result, "fields", None), list)
    )


class RowReader:
    """Reads the rows of ``cursor``'s streamed result (just executed) a batch at a time."""

    def __init__(self, conn: Any, cursor: Any) -> None:
        self._conn = conn
        self._result = cursor._result
        self._columns = len(self._result.fields)
        self._rest = b""
        self._done = False
        self._indexes: dict[int, tuple[pa.Array, pa.Array, pa.Array]] = {}

    def fetch(self, limit: int) -> list[pa.Array] | None:
        """Up to ``limit`` rows as one binary array per column; None once every row was read."""
        if self._done:
            return None
        buf = bytearray(self._rest)
        starts, last_end = self._frame(buf, limit)
        if not starts:
            return None
        data = pa.py_buffer(buf)
        try:
            return self._columns_of(data, len(buf), starts, last_end)
        finally:
            self._rest = bytes(buf[last_end:]) if not self._done else b""

    # -- packets ----------------------------------------------------------------------------

    def _frame(self, buf: bytearray, limit: int) -> tuple[list[int], int]:
        """Walk the packet headers in ``buf`` (reading more as needed) until ``limit`` rows or
        the end of the result; returns the rows' payload offsets and where the last row ends."""
        starts: list[int] = []
        append = starts.append
        checked = 0  # rows whose sequence numbers were checked
        pos = 0
        size = len(buf)
        while len(starts) < limit:
            if pos + 4 <= size:
                length = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
                end = pos + 4 + length
                if end <= size:
                    lead = buf[pos + 4] if length else 0
                    if lead < _EOF and length < MAX_PACKET:
                        append(pos + 4)
                        pos = end
                        continue
                    self._check_sequence(buf, starts[checked:])
                    checked = len(starts)
                    if length < MAX_PACKET:
                        self._special(buf, pos, end)  # raises on an error packet
                        self._done = True
                        break
                    joined = self._join(buf, pos, end)
                    size = len(buf)
                    append(pos + 4)
                    checked += 1
                    pos += 4 + joined
                    continue
            size = self._read_more(buf)
        self._check_sequence(buf, starts[checked:])
        return starts, pos

    def _read_more(self, buf: bytearray) -> int:
        try:
            chunk = self._conn._rfile.read1(CHUNK)
        except OSError as exc:
            if exc.errno == errno.EINTR:
                return len(buf)
            self._lost(f"Lost connection to MySQL server during query ({exc})")
        if not chunk:
            self._lost("Lost connection to MySQL server during query")
        buf += chunk
        return len(buf)

    def _lost(self, message: str) -> None:
        import pymysql

        self._result.unbuffered_active = False
        self._conn._force_close()
        raise pymysql.err.OperationalError(_LOST, message)

    def _special(self, buf: bytearray, pos: int, end: int) -> None:
        """The packet at ``pos`` ends the rows: an EOF packet, or an error raised as pymysql does."""
        import pymysql

        seq = buf[pos + 3]
        payload = bytes(buf[pos + 4:end])
        if not (payload[:1] == b"\xff" and seq == 0):  # MariaDB's error at shutdown has 0
            self._expect(seq)
        self._result.unbuffered_active = False
        if payload[:1] == b"\xff":
            pymysql.protocol.MysqlPacket(payload, self._conn.encoding).raise_for_error()
        if not (payload[:1] == b"\xfe" and len(payload) < 9):
            self._conn._force_close()
            raise pymysql.err.InternalError("MySQL protocol: unexpected packet in a result set")
        self._conn._next_seq_id = (seq + 1) % 256
        self._result.connection = None
        self._result.rows = None

    def _join(self, buf: bytearray, pos: int, end: int) -> int:
        """A row longer than one packet: the continuation packets' headers are removed from
        ``buf`` so the row's payload is contiguous. Returns the row's length."""
        seq = buf[pos + 3]
        self._expect(seq)
        total = MAX_PACKET
        header = end  # where the next continuation header starts
        while True:
            while header + 4 > len(buf):
                self._read_more(buf)
            length = buf[header] | buf[header + 1] << 8 | buf[header + 2] << 16
            seq = (seq + 1) % 256
            self._conn._next_seq_id = seq
            self._expect(buf[header + 3])
            del buf[header:header + 4]
            total += length
            while header + length > len(buf):
                self._read_more(buf)
            header += length
            if length < MAX_PACKET:
                break
        self._conn._next_seq_id = (seq + 1) % 256
        return total

    def _expect(self, seq: int) -> None:
        import pymysql

        if seq != self._conn._next_seq_id % 256:
            self._result.unbuffered_active = False
            self._conn._force_close()
            raise pymysql.err.InternalError(
                f"Packet sequence number wrong - got {seq} expected {self._conn._next_seq_id}"
            )

    def _check_sequence(self, buf: bytearray, starts: list[int]) -> None:
        """The packets of ``starts`` carry the next sequence numbers (as pymysql checks)."""
        import pymysql

        if not starts:
            return
        first = self._conn._next_seq_id % 256
        n = len(starts)
        counting = self._index(n)[2]
        whole = pa.Array.from_buffers(pa.uint8(), len(buf), [None, pa.py_buffer(buf)])
        seen = pc.take(whole, pc.subtract(pa.array(starts, pa.int64()), 1))
        wanted = pc.bit_wise_and(pc.add(counting, first), 255).cast(pa.uint8())
        matches = pc.all(pc.equal(seen, wanted)).as_py()
        del whole, seen
        if not matches:
            self._result.unbuffered_active = False
            self._conn._force_close()
            raise pymysql.err.InternalError("Packet sequence number wrong in a result set")
        self._conn._next_seq_id = (first + n) % 256

    # -- values -----------------------------------------------------------------------------

    def _index(self, n: int) -> tuple[pa.Array, pa.Array, pa.Array]:
        """Index arrays for ``n`` rows: interleave starts with ends, keep every other value, 0..n-1."""
        cached = self._indexes.get(n)
        if cached is None:
            interleave = pa.array([i // 2 + (i % 2) * n for i in range(2 * n)], pa.int64())
            evens = pa.array(range(0, 2 * n - 1, 2), pa.int64())
            cached = (interleave, evens, pa.array(range(n), pa.int64()))
            if len(self._indexes) < 4:
                self._indexes[n] = cached
        return cached

    def _columns_of(self, data: pa.Buffer, size: int, starts: list[int], last_end: int) -> list[pa.Array]:
        import pymysql

        n = len(starts)
        interleave, evens, _ = self._index(n)
        wide = size >= 1 << 31
        bytes_ = pa.Array.from_buffers(pa.uint8(), size, [None, data])
        pos = pa.array(starts, pa.int64())
        ends = pa.concat_arrays([pc.subtract(pos[1:], 4), pa.array([last_end], pa.int64())])
        columns = []
        for _ in range(self._columns):
            if pc.any(pc.greater_equal(pos, ends)).as_py():
                raise pymysql.err.InternalError("MySQL protocol: a row has fewer values than columns")
            lead = pc.take(bytes_, pos)
            if pc.all(pc.less(lead, _NULL)).as_py():  # no NULL, every value under 251 bytes
                start = pc.add(pos, 1)
                end = pc.add(start, lead.cast(pa.int64()))
                valid = None
            else:
                start, end, valid = _long_or_null(bytes_, pos, lead, size)
            offsets = pc.take(pa.concat_arrays([start, end]), interleave)
            kind = pa.large_binary() if wide else pa.binary()
            offsets = offsets if wide else offsets.cast(pa.int32())
            spread = pa.Array.from_buffers(kind, 2 * n - 1, [None, offsets.buffers()[1], data])
            values = spread.take(evens)
            if wide:
                values = values.cast(pa.binary())
            if valid is not None:
                values = pa.Array.from_buffers(
                    pa.binary(), n, [valid.buffers()[1], *values.buffers()[1:]]
                )
            columns.append(values)
            pos = end
        if not pc.all(pc.equal(pos, ends)).as_py():
            raise pymysql.err.InternalError("MySQL protocol: a row has more values than columns")
        return columns


def _long_or_null(
    bytes_: pa.Array, pos: pa.Array, lead: pa.Array, size: int
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Starts, ends and validity of one column when some value is NULL or 251 bytes or longer
    (its length then takes 2, 3 or 8 more bytes)."""
    import pymysql

    if pc.any(pc.equal(lead, _ERR)).as_py():
        raise pymysql.err.InternalError("MySQL protocol: a value with an invalid length prefix")
    last = size - 1

    def byte(k: int) -> pa.Array:
        return pc.take(bytes_, pc.min_element_wise(pc.add(pos, k), last)).cast(pa.int64())

    lead64 = lead.cast(pa.int64())
    length = lead64
    header = pa.array([1] * len(pos), pa.int64())
    if pc.any(pc.greater_equal(lead, _LEN2)).as_py():
        value = pa.array([0] * len(pos), pa.int64())
        widths = {_LEN2: 2, _LEN3: 3, _LEN8: 8}
        for k in range(1, 9):
            value = pc.bit_wise_or(value, pc.shift_left(byte(k), 8 * (k - 1)))
            if k in (2, 3, 8):
                code = {2: _LEN2, 3: _LEN3, 8: _LEN8}[k]
                is_code = pc.equal(lead64, code)
                length = pc.if_else(is_code, value, length)
                header = pc.if_else(is_code, 1 + widths[code], header)
            if k == 3 and not pc.any(pc.equal(lead64, _LEN8)).as_py():
                break
    is_null = pc.equal(lead64, _NULL)
    length = pc.if_else(is_null, 0, length)
    start = pc.add(pos, header)
    return start, pc.add(start, length), pc.invert(is_null)
