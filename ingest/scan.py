"""The compiled fast path of telemetry validation (numba, no GIL held).

A clean telemetry message (the usual case: canonical JSON, every reading known, in the time
window, with a finite value and a valid quality) is read here straight from its bytes, without
building a Python object per reading: one compiled pass finds the envelope fields and the
readings, looks each (device, point) pair up in a hash table of the registry, and writes the
rows in PostgreSQL's binary COPY format together with the dirty rollup buckets and the device
last-seen times. The kernels run with the GIL released, so the ingest worker's network and
writer threads go on meanwhile on the other core.

The scanner is stricter than the Python paths: it accepts only what
:func:`ingest.validate.check_clean_telemetry` accepts, and gives up (returns ``None``) on
anything else it meets - an escape in a string, a ``null`` value, a key it does not know, a
number it cannot convert exactly. The caller then takes the Python fast path or the full
decoder, which name the reason of every reject. ``tests/ingest/test_scan.py`` checks that both
give the same result on generated messages.

Numbers are converted exactly as Python's ``float()`` would: integers of up to 18 digits, and
decimals whose digits fit in 53 bits with a power of ten up to 22 (both operands exact, so the
one IEEE multiplication or division is correctly rounded). Any other number is handed back with
its byte span and converted by Python (``fix`` below), so no value is ever rounded differently.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

# ---------------------------------------------------------------------------- status codes

OK = 0
"""The message was read; every reading is good."""
GIVE_UP = 1
"""Not a clean canonical message: let the Python paths decide."""

NUM_VALUE, NUM_BITS, NUM_PYTHON = 0, 1, 2

# envelope slots returned by scan()
H_V, H_GW_S, H_GW_E, H_BOOT_S, H_BOOT_E, H_SEQ, H_SENT = range(7)
_KEY_V, _KEY_GW, _KEY_BOOT, _KEY_SEQ, _KEY_SENT, _KEY_R = 1, 2, 4, 8, 16, 32
_ALL_KEYS = 63

ROW_BYTES = 44
"""One binary COPY tuple (ts, point_id, value, quality) with a non-null value."""
PG_EPOCH_MS = 946_684_800_000

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_POW10 = np.array([10.0**k for k in range(23)], dtype=np.float64)
_TWO53 = 1 << 53
_BIG = 10**17
_Q_MIN, _Q_MAX = -342, 308


def _powers_of_five() -> np.ndarray[Any, Any]:
    """5**q for q in [-342, 308] as 128-bit significands (high, low): truncated for q >= 0,
    rounded up from below for q < 0 (the table of the Eisel-Lemire algorithm)."""
    out: list[int] = []
    for q in range(_Q_MIN, _Q_MAX + 1):
        if q >= 0:
            c = 5**q
            while c < 1 << 127:
                c <<= 1
            c >>= max(0, c.bit_length() - 128)
        else:
            p5 = 5**-q
            z = p5.bit_length()
            b = z + 127 if q >= -27 else 2 * z + 128
            c = (1 << b) // p5 + 1
            c >>= max(0, c.bit_length() - 128)
        out += [c >> 64, c & (2**64 - 1)]
    return np.array(out, dtype=np.uint64)


_P5 = _powers_of_five()
_ZERO, _ONE = np.uint64(0), np.uint64(1)
_U32 = np.uint64(32)
_M32 = np.uint64(0xFFFFFFFF)
_TOP = np.uint64(1 << 63)
_LOW9 = np.uint64(0x1FF)
_TWO52U, _TWO53U = np.uint64(1 << 52), np.uint64(1 << 53)


@njit(cache=True, nogil=True)
def _hash(buf: Any, s1: int, e1: int, s2: int, e2: int) -> np.uint64:
    """FNV-1a of ``buf[s1:e1] + b"\\0" + buf[s2:e2]``."""
    h = _FNV_OFFSET
    for i in range(s1, e1):
        h = (h ^ np.uint64(buf[i])) * _FNV_PRIME
    h = h * _FNV_PRIME  # the separator byte 0
    for i in range(s2, e2):
        h = (h ^ np.uint64(buf[i])) * _FNV_PRIME
    return h


@njit(cache=True, nogil=True)
def _hash_all(names: Any, off: Any, sep: Any) -> Any:
    """Hashes of the registry keys ``names[off[i]:off[i+1]]``, each ``device \\0 point`` with
    the separator at ``sep[i]``."""
    n = off.shape[0] - 1
    out = np.empty(n, dtype=np.uint64)
    for i in range(n):
        out[i] = _hash(names, off[i], sep[i], sep[i] + 1, off[i + 1])
    return out


@njit(cache=True, nogil=True)
def _ws(buf: Any, i: int) -> int:
    n = buf.shape[0]
    while i < n:
        c = buf[i]
        # space, newline, CR, tab (compares: a set would be built on every call)
        if c != 32 and c != 10 and c != 13 and c != 9:  # noqa: PLR1714
            return i
        i += 1
    return i


@njit(cache=True, nogil=True)
def _string(buf: Any, i: int) -> tuple[int, int, int]:
    """``buf[i]`` must open a string: (start, end, next) of its plain content, or next = -1
    when it is not a plain string (an escape, a control character, unterminated)."""
    n = buf.shape[0]
    if i >= n or buf[i] != 34:  # "
        return 0, 0, -1
    s = i + 1
    j = s
    while j < n:
        c = buf[j]
        if c == 34:
            return s, j, j + 1
        if c == 92 or c < 32:  # backslash or control: leave it to the full decoder
            return 0, 0, -1
        j += 1
    return 0, 0, -1


_W_V, _W_R, _W_GW, _W_BOOT, _W_SEQ, _W_SENT = (
    np.frombuffer(w, dtype=np.uint8).copy() for w in (b"v", b"r", b"gw", b"boot", b"seq", b"sent")
)
"""The envelope's keys, as bytes the scanner compares with."""


@njit(cache=True, nogil=True, inline="always")
def _equal(x: Any, xs: int, y: Any, ys: int, n: int) -> bool:
    """Whether ``x[xs:xs+n]`` equals ``y[ys:ys+n]`` (a loop: numba has no all() over a
    generator)."""
    for j in range(n):  # noqa: SIM110
        if x[xs + j] != y[ys + j]:
            return False
    return True


@njit(cache=True, nogil=True, inline="always")
def _is(buf: Any, s: int, e: int, word: Any) -> bool:
    """Whether ``buf[s:e]`` is ``word``."""
    return e - s == word.shape[0] and _equal(buf, s, word, 0, e - s)


@njit(cache=True, nogil=True)
def _integer(buf: Any, i: int) -> tuple[int, int]:
    """A JSON integer (no fraction or exponent) of at most 18 digits: (value, next) or
    next = -1."""
    n = buf.shape[0]
    neg = False
    if i < n and buf[i] == 45:  # -
        neg = True
        i += 1
    if i >= n or not 48 <= buf[i] <= 57:
        return 0, -1
    if buf[i] == 48 and i + 1 < n and 48 <= buf[i + 1] <= 57:
        return 0, -1  # a leading zero is not JSON
    v = 0
    d = 0
    while i < n and 48 <= buf[i] <= 57:
        v = v * 10 + (buf[i] - 48)
        d += 1
        i += 1
    if d > 18:
        return 0, -1
    if i < n and (buf[i] == 46 or buf[i] == 101 or buf[i] == 69):
        return 0, -1  # . e E: a float where an integer must be
    return (-v if neg else v), i


@njit(cache=True, nogil=True)
def _number(buf: Any, i: int) -> tuple[float, np.uint64, int, int]:
    """A JSON number as a double: (value, bits, how, next). ``how`` says where the double is:
    NUM_VALUE in ``value``, NUM_BITS in ``bits`` (its IEEE bits), NUM_PYTHON nowhere (Python
    must convert it: too many digits, subnormal or out of range). next = -1 when it is not a
    JSON number at all."""
    n = buf.shape[0]
    neg = False
    if i < n and buf[i] == 45:  # -
        neg = True
        i += 1
    if i >= n or not 48 <= buf[i] <= 57:
        return 0.0, _ZERO, NUM_PYTHON, -1
    if buf[i] == 48 and i + 1 < n and 48 <= buf[i + 1] <= 57:
        return 0.0, _ZERO, NUM_PYTHON, -1  # a leading zero is not JSON
    m = 0
    over = False  # more significant digits than an int64 holds: Python converts
    frac = 0
    while i < n and 48 <= buf[i] <= 57:
        if m >= _BIG:
            over = True
        else:
            m = m * 10 + (buf[i] - 48)
        i += 1
    is_int = True
    if i < n and buf[i] == 46:  # .
        is_int = False
        i += 1
        if i >= n or not 48 <= buf[i] <= 57:
            return 0.0, _ZERO, NUM_PYTHON, -1
        while i < n and 48 <= buf[i] <= 57:
            if m >= _BIG:
                over = True
            else:
                m = m * 10 + (buf[i] - 48)
                frac += 1
            i += 1
    exp = 0
    if i < n and (buf[i] == 101 or buf[i] == 69):  # e E
        is_int = False
        i += 1
        eneg = False
        if i < n and (buf[i] == 43 or buf[i] == 45):  # + -
            eneg = buf[i] == 45
            i += 1
        if i >= n or not 48 <= buf[i] <= 57:
            return 0.0, _ZERO, NUM_PYTHON, -1
        while i < n and 48 <= buf[i] <= 57:
            if exp < 100_000:
                exp = exp * 10 + (buf[i] - 48)
            i += 1
        if eneg:
            exp = -exp
    if over:
        return 0.0, _ZERO, NUM_PYTHON, i
    if m == 0:
        # Python: int 0 -> 0.0, but a decimal -0.0 keeps its sign
        return (-0.0 if neg and not is_int else 0.0), _ZERO, NUM_VALUE, i
    if is_int:
        # Python makes float(int): correctly rounded, like the conversion here
        return (-float(m) if neg else float(m)), _ZERO, NUM_VALUE, i
    e10 = exp - frac
    if m < _TWO53 and -22 <= e10 <= 22:
        # both operands exact: one correctly rounded operation (Clinger's fast path)
        v = float(m)
        v = v * _POW10[e10] if e10 >= 0 else v / _POW10[-e10]
        return (-v if neg else v), _ZERO, NUM_VALUE, i
    bits = _eisel_lemire(np.uint64(m), e10)
    if bits == _ZERO:
        return 0.0, _ZERO, NUM_PYTHON, i
    return 0.0, (bits | _TOP if neg else bits), NUM_BITS, i


@njit(cache=True, nogil=True)
def _mul128(a: np.uint64, b: np.uint64) -> tuple[np.uint64, np.uint64]:
    """The 128-bit product of two 64-bit numbers as (high, low)."""
    a_lo = a & _M32
    a_hi = a >> _U32
    b_lo = b & _M32
    b_hi = b >> _U32
    p0 = a_lo * b_lo
    p1 = a_lo * b_hi
    p2 = a_hi * b_lo
    p3 = a_hi * b_hi
    mid = (p0 >> _U32) + (p1 & _M32) + (p2 & _M32)
    lo = (p0 & _M32) | (mid << _U32)
    hi = p3 + (p1 >> _U32) + (p2 >> _U32) + (mid >> _U32)
    return hi, lo


@njit(cache=True, nogil=True)
def _eisel_lemire(w: np.uint64, q: int) -> np.uint64:
    """``w * 10**q`` correctly rounded to a double (w > 0, at most 19 digits), by the
    Eisel-Lemire algorithm (D. Lemire, "Number parsing at a gigabyte per second", 2021; with
    the proof of N. Mushtak and D. Lemire, 2023, that the two products below always decide).
    Returns the IEEE bits, or 0 for subnormal, infinite or out-of-table results (Python
    converts those)."""
    if q < _Q_MIN or q > _Q_MAX:
        return _ZERO
    lz = 0
    while w & _TOP == _ZERO:
        w = w << _ONE
        lz += 1
    k = 2 * (q - _Q_MIN)
    hi, lo = _mul128(w, _P5[k])
    if hi & _LOW9 == _LOW9:
        hi2, _ = _mul128(w, _P5[k + 1])
        lo = lo + hi2
        if hi2 > lo:
            hi = hi + _ONE
    upper = int(hi >> np.uint64(63))
    shift = np.uint64(upper + 9)
    mant = hi >> shift
    power2 = ((217706 * q) >> 16) + 63 + upper - lz + 1023
    if power2 <= 0:
        return _ZERO  # subnormal
    if lo <= _ONE and -4 <= q <= 23 and mant & np.uint64(3) == _ONE and (mant << shift) == hi:
        mant = mant & ~_ONE  # exactly halfway: round to even
    mant = mant + (mant & _ONE)
    mant = mant >> _ONE
    if mant >= _TWO53U:
        mant = _TWO52U
        power2 += 1
    mant = mant & ~_TWO52U
    if power2 >= 0x7FF:
        return _ZERO  # infinite
    return mant | (np.uint64(power2) << np.uint64(52))


# rows of the registry array (see WireTable)
R_HASH, R_ORDER, R_OFF, R_SEP, R_PID, R_DID, R_DGW = range(7)


@njit(cache=True, nogil=True)
def _lookup(buf: Any, ds: int, de: int, ps: int, pe: int, reg: Any, names: Any) -> int:  # noqa: PLR0917
    """Row of the registry key ``device \0 point`` or -1."""
    h = np.int64(_hash(buf, ds, de, ps, pe))
    n = reg.shape[1] - 1
    table = reg[R_HASH, :n]
    k = np.searchsorted(table, h)
    while k < n and table[k] == h:
        r = reg[R_ORDER, k]
        a, s, b = reg[R_OFF, r], reg[R_SEP, r], reg[R_OFF, r + 1]
        if (
            s - a == de - ds
            and b - s - 1 == pe - ps
            and _equal(names, a, buf, ds, de - ds)
            and _equal(names, s + 1, buf, ps, pe - ps)
        ):
            return int(r)
        k += 1
    return -1


@njit(cache=True, nogil=True)
def _readings(  # noqa: PLR0917
    buf: Any,
    i: int,
    gw_id: int,
    lo: int,
    hi: int,
    reg: Any,
    names: Any,
    ts: Any,
    idx: Any,
    val: Any,
    q: Any,
    fix: Any,
) -> tuple[int, int, int]:
    """The readings array at ``buf[i]``: (count, next, fixes) or next = -1 to give up."""
    i = _ws(buf, i)
    n = buf.shape[0]
    if i >= n or buf[i] != 91:  # [
        return 0, -1, 0
    i = _ws(buf, i + 1)
    count = 0
    nfix = 0
    if i < n and buf[i] == 93:  # ]
        return 0, i + 1, 0
    cap = ts.shape[0]
    vbits = val.view(np.uint64)
    while True:
        if i >= n or buf[i] != 91 or count >= cap:
            return 0, -1, 0
        ds, de, i = _string(buf, _ws(buf, i + 1))
        if i < 0:
            return 0, -1, 0
        i = _ws(buf, i)
        if i >= n or buf[i] != 44:  # ,
            return 0, -1, 0
        ps, pe, i = _string(buf, _ws(buf, i + 1))
        if i < 0:
            return 0, -1, 0
        i = _ws(buf, i)
        if i >= n or buf[i] != 44:
            return 0, -1, 0
        t, i = _integer(buf, _ws(buf, i + 1))
        if i < 0 or t > hi or t < lo:
            return 0, -1, 0
        i = _ws(buf, i)
        if i >= n or buf[i] != 44:
            return 0, -1, 0
        vs = _ws(buf, i + 1)
        v, bits, how, i = _number(buf, vs)
        if i < 0:
            return 0, -1, 0  # null, true, NaN, a string: the Python paths decide
        if how == NUM_PYTHON:
            fix[nfix, 0] = count
            fix[nfix, 1] = vs
            fix[nfix, 2] = i
            nfix += 1
        i = _ws(buf, i)
        quality = 0
        if i < n and buf[i] == 44:
            quality, i = _integer(buf, _ws(buf, i + 1))
            if i < 0 or quality < 0 or quality > 3:
                return 0, -1, 0
            i = _ws(buf, i)
        if i >= n or buf[i] != 93:
            return 0, -1, 0
        r = _lookup(buf, ds, de, ps, pe, reg, names)
        if r < 0:
            return 0, -1, 0
        g = reg[R_DGW, r]
        if g >= 0 and g != gw_id:
            return 0, -1, 0
        ts[count] = t
        idx[count] = r
        if how == NUM_BITS:
            vbits[count] = bits
        else:
            val[count] = v
        q[count] = quality
        count += 1
        i = _ws(buf, i + 1)
        if i < n and buf[i] == 44:
            i = _ws(buf, i + 1)
            continue
        if i < n and buf[i] == 93:
            return count, i + 1, nfix
        return 0, -1, 0


@njit(cache=True, nogil=True)
def _scan(  # noqa: PLR0917
    buf: Any, gw_id: int, lo: int, hi: int, reg: Any, names: Any
) -> tuple[int, Any, Any, Any, Any, Any, int, Any, int]:
    """Read a telemetry payload: (status, envelope, ts, registry index, value, quality,
    count, fixes, number of fixes). A row of ``fixes`` is (reading, start, end) of a value
    Python must convert."""
    n = buf.shape[0]
    cap = n // 12 + 1  # the shortest reading ["a","b",0,0] takes 13 bytes with its comma
    hdr = np.zeros(7, dtype=np.int64)
    ts = np.empty(cap, dtype=np.int64)
    idx = np.empty(cap, dtype=np.int64)
    val = np.empty(cap, dtype=np.float64)
    q = np.empty(cap, dtype=np.int64)
    fix = np.empty((cap, 3), dtype=np.int64)
    count = 0
    nfix = 0
    seen = 0
    i = _ws(buf, 0)
    if i >= n or buf[i] != 123:  # {
        return GIVE_UP, hdr, ts, idx, val, q, 0, fix, 0
    i = _ws(buf, i + 1)
    while True:
        ks, ke, i = _string(buf, i)
        if i < 0:
            return GIVE_UP, hdr, ts, idx, val, q, 0, fix, 0
        i = _ws(buf, i)
        if i >= n or buf[i] != 58:  # :
            return GIVE_UP, hdr, ts, idx, val, q, 0, fix, 0
        i = _ws(buf, i + 1)
        key = 0
        if _is(buf, ks, ke, _W_V):
            key = _KEY_V
            x, i = _integer(buf, i)
            hdr[H_V] = x
        elif _is(buf, ks, ke, _W_R):
            key = _KEY_R
            count, i, nfix = _readings(buf, i, gw_id, lo, hi, reg, names, ts, idx, val, q, fix)
        elif _is(buf, ks, ke, _W_GW) or _is(buf, ks, ke, _W_BOOT):
            key = _KEY_GW if ke - ks == 2 else _KEY_BOOT
            at = H_GW_S if key == _KEY_GW else H_BOOT_S
            a, b, i = _string(buf, i)
            hdr[at] = a
            hdr[at + 1] = b
        elif _is(buf, ks, ke, _W_SEQ) or _is(buf, ks, ke, _W_SENT):
            key = _KEY_SEQ if ke - ks == 3 else _KEY_SENT
            x, i = _integer(buf, i)
            hdr[H_SEQ if key == _KEY_SEQ else H_SENT] = x
        if key == 0 or seen & key or i < 0:
            # an unknown or repeated key, or a value of the wrong kind
            return GIVE_UP, hdr, ts, idx, val, q, 0, fix, 0
        seen |= key
        i = _ws(buf, i)
        if i < n and buf[i] == 44:  # ,
            i = _ws(buf, i + 1)
            continue
        if i < n and buf[i] == 125:  # }
            break
        return GIVE_UP, hdr, ts, idx, val, q, 0, fix, 0
    if seen != _ALL_KEYS or _ws(buf, i + 1) != n:
        return GIVE_UP, hdr, ts, idx, val, q, 0, fix, 0
    return OK, hdr, ts, idx, val, q, count, fix, nfix


@njit(cache=True, nogil=True, inline="always")
def _field8(out: Any, o: int, v: np.uint64) -> None:
    """A binary COPY field of 8 bytes at ``out[o]``: its length (int32 8), then ``v``
    big-endian."""
    out[o] = 0
    out[o + 1] = 0
    out[o + 2] = 0
    out[o + 3] = 8
    for j in range(8):
        out[o + 4 + j] = (v >> np.uint64(56 - 8 * j)) & np.uint64(0xFF)


@njit(cache=True, nogil=True)
def _pack(  # noqa: PLR0917
    ts: Any, idx: Any, val: Any, q: Any, count: int, reg: Any, bucket_ms: int
) -> tuple[Any, Any, Any, Any, Any]:
    """Binary COPY bytes of the rows, the distinct (point, bucket) pairs of good rows and each
    device's newest timestamp of a reading that is not comm-fail (quality 2)."""
    out = np.empty(count * ROW_BYTES, dtype=np.uint8)
    bits = val[:count].view(np.uint64)
    pairs = set()
    seen: dict[int, int] = {}
    for k in range(count):
        o = k * ROW_BYTES
        t = ts[k]
        p = reg[R_PID, idx[k]]
        out[o] = 0
        out[o + 1] = 4  # four fields
        _field8(out, o + 2, np.uint64((t - PG_EPOCH_MS) * 1000))  # timestamptz: microseconds
        _field8(out, o + 14, np.uint64(p))
        _field8(out, o + 26, bits[k])
        out[o + 38] = 0
        out[o + 39] = 0
        out[o + 40] = 0
        out[o + 41] = 2
        qq = q[k]
        out[o + 42] = 0
        out[o + 43] = qq
        if qq == 0:
            pairs.add((p, t - t % bucket_ms))
        if qq != 2:
            d = reg[R_DID, idx[k]]
            if d not in seen or t > seen[d]:
                seen[d] = t
    bp = np.empty(len(pairs), dtype=np.int64)
    bb = np.empty(len(pairs), dtype=np.int64)
    for j, (p, b2) in enumerate(pairs):
        bp[j] = p
        bb[j] = b2
    sd = np.empty(len(seen), dtype=np.int64)
    st = np.empty(len(seen), dtype=np.int64)
    for j, (d, t) in enumerate(seen.items()):
        sd[j] = d
        st[j] = t
    return out, bp, bb, sd, st


# ------------------------------------------------------------------------ the registry table


@dataclass(frozen=True)
class WireTable:
    """The (device, point) pairs of the registry as the arrays the scanner searches."""

    reg: Any
    """int64, shape (7, n + 1), one row each (the last column is used by R_OFF only):
    R_HASH the sorted hashes of ``device \0 point`` (the uint64 bits, sorted as int64),
    R_ORDER the pair of each sorted hash, R_OFF/R_SEP where each pair's name starts in
    ``names`` and where its separator is, R_PID/R_DID the point and device ids, R_DGW the
    gateway id of the device (-1 for none)."""
    names: Any
    """The names ``device \0 point`` one after another (uint8)."""


def build_table(wire: dict[tuple[str, str], tuple[int, int, int | None]]) -> WireTable:
    """The scanner's table of a registry's wire lookup ((device, point) -> ids)."""
    n = len(wire)
    reg = np.zeros((7, n + 1), dtype=np.int64)
    blobs: list[bytes] = []
    at = 0
    for r, ((dev, point), (p, d, g)) in enumerate(wire.items()):
        db, pb = dev.encode(), point.encode()
        reg[R_OFF, r] = at
        reg[R_SEP, r] = at + len(db)
        reg[R_PID, r] = p
        reg[R_DID, r] = d
        reg[R_DGW, r] = -1 if g is None else g
        blobs.append(db + b"\0" + pb)
        at += len(db) + 1 + len(pb)
    reg[R_OFF, n] = at
    names = np.frombuffer(b"".join(blobs) or b"\0", dtype=np.uint8).copy()
    hashes = _hash_all(names, reg[R_OFF], reg[R_SEP]).view(np.int64)
    order = np.argsort(hashes, kind="stable")
    reg[R_HASH, :n] = hashes[order]
    reg[R_ORDER, :n] = order
    return WireTable(reg=reg, names=names)


@njit(cache=True, nogil=True)
def scan(  # noqa: PLR0917
    buf: Any, gw_id: int, lo: int, hi: int, reg: Any, names: Any, bucket_ms: int
) -> tuple[Any, Any]:
    """Read and pack a telemetry payload in one call: (binary COPY bytes, meta).

    ``meta`` is one int64 array (few objects cross back to Python): status, the envelope
    (version, gateway and boot spans, seq, sent), the counts of readings, fixes, buckets and
    devices, then the fixes as (reading, start, end), the buckets as (point, bucket start) and
    the devices as (device, newest ts). The bytes of a reading in the fixes hold no value yet.
    """
    status, hdr, ts, idx, val, q, count, fix, nfix = _scan(buf, gw_id, lo, hi, reg, names)
    if status != OK:
        meta = np.zeros(_META, dtype=np.int64)
        meta[0] = status
        return np.empty(0, dtype=np.uint8), meta
    out, bp, bb, sd, st = _pack(ts, idx, val, q, count, reg, bucket_ms)
    nb, ns = bp.shape[0], sd.shape[0]
    meta = np.empty(_META + 3 * nfix + 2 * nb + 2 * ns, dtype=np.int64)
    meta[0] = OK
    meta[1 : 1 + 7] = hdr
    meta[8] = count
    meta[9] = nfix
    meta[10] = nb
    meta[11] = ns
    k = _META
    for j in range(nfix):
        meta[k] = fix[j, 0]
        meta[k + 1] = fix[j, 1]
        meta[k + 2] = fix[j, 2]
        k += 3
    for j in range(nb):
        meta[k] = bp[j]
        meta[k + 1] = bb[j]
        k += 2
    for j in range(ns):
        meta[k] = sd[j]
        meta[k + 1] = st[j]
        k += 2
    return out, meta


_META = 12
_VALUE_AT = 30
"""Offset of the 8 value bytes in a packed row."""
_DOUBLE = struct.Struct(">d")
_ROW = np.dtype(
    [
        ("n", ">i2"),
        ("l1", ">i4"),
        ("ts", ">i8"),
        ("l2", ">i4"),
        ("pid", ">i8"),
        ("l3", ">i4"),
        ("val", ">f8"),
        ("l4", ">i4"),
        ("q", ">i2"),
    ]
)
"""A packed row as a numpy record (44 bytes, no padding)."""


def unpack(packed: bytes) -> tuple[Any, Any, Any, Any]:
    """The (ts ms, point id, value, quality) columns of packed rows without NULL values."""
    rec = np.frombuffer(packed, dtype=_ROW)
    return rec["ts"] // 1000 + PG_EPOCH_MS, rec["pid"], rec["val"], rec["q"]


@dataclass(frozen=True, slots=True)
class Scanned:
    """A clean message as read by the scanner (see :func:`read`)."""

    gw: bytes
    boot: bytes
    seq: int
    sent: int
    version: int
    count: int
    packed: bytes
    buckets: np.ndarray[Any, Any]
    """Distinct (point id, bucket start ms) pairs of the good rows, shape (n, 2)."""
    seen: np.ndarray[Any, Any]
    """Each device's newest timestamp of a reading that is not comm-fail, shape (n, 2)."""


_INF = (float("inf"), float("-inf"))


def read(  # noqa: PLR0917
    payload: bytes, gw_id: int, lo: int, hi: int, t: WireTable, bucket_ms: int
) -> Scanned | None:
    """Scan a payload; None when it is not a clean canonical message."""
    buf = np.frombuffer(payload, dtype=np.uint8)
    out, meta = scan(buf, gw_id, lo, hi, t.reg, t.names, bucket_ms)
    if meta[0] != OK:
        return None
    m = meta[:_META].tolist()
    count, nfix, nb, ns = m[8:12]
    k = _META
    if nfix:
        # values the scanner could not convert exactly: Python's float() does it
        patched = bytearray(out.tobytes())
        for row, s, e in meta[k : k + 3 * nfix].reshape(nfix, 3).tolist():
            v = float(payload[s:e])
            if v in _INF:
                return None
            at = row * ROW_BYTES + _VALUE_AT
            patched[at : at + 8] = _DOUBLE.pack(v)
        packed = bytes(patched)
        k += 3 * nfix
    else:
        packed = out.tobytes()
    b = k + 2 * nb
    return Scanned(
        gw=payload[m[1 + H_GW_S] : m[1 + H_GW_E]],
        boot=payload[m[1 + H_BOOT_S] : m[1 + H_BOOT_E]],
        seq=m[1 + H_SEQ],
        sent=m[1 + H_SENT],
        version=m[1 + H_V],
        count=count,
        packed=packed,
        buckets=meta[k:b].reshape(nb, 2),
        seen=meta[b : b + 2 * ns].reshape(ns, 2),
    )


def warm_up() -> None:
    """Compile (or load from the cache) every kernel, so the first message is not slow."""
    t = build_table({("d", "p"): (1, 2, None)})
    read(b'{"v":1,"gw":"g","boot":"b","seq":0,"sent":0,"r":[["d","p",5,1.5,0]]}', 1, 0, 9, t, 300)
