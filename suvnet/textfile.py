"""Which encoding an uploaded text file is in, and a clear error when it is not UTF-8.

Files come from Excel ("CSV UTF-8", plain "CSV" = Windows-1251 on a Russian Windows,
"Unicode text" = UTF-16), from 1C (Windows-1251) and from old DOS tools (866). suvnet reads
UTF-8; a byte order mark (BOM) is recognised and decides (UTF-8, UTF-16, UTF-32). Any other
encoding must be named by the user (``--encoding cp1251``): a wrong guess would put garbled
names into the database without anyone noticing, so we only guess to write the message.
Pure functions, no I/O.
"""

from __future__ import annotations

import codecs
import re

from suvnet.errors import SuvnetError

BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
LABELS = {
    "cp1251": "Windows-1251 (Cyrillic; Excel's plain CSV and 1C on Windows)",
    "cp866": "DOS 866 (Cyrillic)",
    "koi8-r": "KOI8-R (Cyrillic)",
    "cp1252": "Windows-1252 (Western European)",
    "utf-16-le": "UTF-16 little-endian without a byte order mark (Excel's Unicode text)",
    "utf-16-be": "UTF-16 big-endian without a byte order mark",
}
_CYRILLIC = frozenset(
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюяўқғҳ" + "абвгдеёжзийклмнопрстуфхцчшщъыьэюяўқғҳ".upper()
)
_WORD = re.compile(r"\w+")


class FileEncodingError(SuvnetError):
    """A text file is not in the expected encoding; the message names the likely one."""

    def __init__(self, message: str, guess: str | None = None) -> None:
        super().__init__(message)
        self.guess = guess


def bom_encoding(head: bytes) -> str | None:
    """The encoding a byte order mark at the start of ``head`` announces, else None."""
    for bom, name in BOMS:
        if head.startswith(bom):
            return name
    return None


def normalise_encoding(name: str) -> str:
    """A user's ``--encoding`` as Python's codec name; a clear error when unknown."""
    try:
        return codecs.lookup(name.strip()).name
    except LookupError as exc:
        raise FileEncodingError(
            f"unknown encoding {name!r}; use for example utf-8, cp1251, cp866 or utf-16"
        ) from exc


def first_bad_utf8(sample: bytes, *, complete: bool) -> int | None:
    """Offset of the first byte that is not UTF-8, or None. With ``complete=False`` the
    sample is the start of a longer file, so a character cut at its end is fine."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(sample, final=complete)
    except UnicodeDecodeError as exc:
        return exc.start
    return None


def guess_encoding(sample: bytes) -> str:
    """The most likely encoding of a sample that is not UTF-8 (see :data:`LABELS`)."""
    order = _utf16_order(sample)
    if order is not None:
        return f"utf-16-{order}"
    best, best_score = "cp1252", 0
    # Windows-1251 or DOS 866 (KOI8-R is not guessed: in Uzbekistan it is rare, and upper-case
    # Windows-1251 text reads as lower-case KOI8-R). Count the Cyrillic letters of the words
    # that are all Cyrillic: Latin text read in a Cyrillic table gives odd letters inside
    # Latin words, the wrong Cyrillic table gives box-drawing signs.
    for enc in ("cp1251", "cp866"):
        score = sum(
            sum(ch in _CYRILLIC for ch in word)
            for word in _WORD.findall(sample.decode(enc, errors="replace"))
            if not any(ch.isascii() for ch in word)
        )
        if score > best_score:
            best, best_score = enc, score
    return best


def looks_utf16(sample: bytes) -> bool:
    """UTF-16 without a byte order mark: every other byte is 0 (Latin), 2 (the Uzbek ʻ) or 4
    (Cyrillic). Such text is often valid UTF-8 too, so this is checked first."""
    return _utf16_order(sample) is not None


def _utf16_order(sample: bytes) -> str | None:
    """'le' or 'be' when the sample looks like UTF-16 (see :func:`looks_utf16`)."""
    if len(sample) < 4:
        return None
    for order, high in (("le", sample[1::2]), ("be", sample[0::2])):
        if sum(b in (0, 2, 4) for b in high) >= 0.9 * len(high):
            return order
    return None


def not_utf8_message(
    sample: bytes, offset: int | None, where: str, *, option: str | None = "--encoding"
) -> str:
    """'<where>: the file is not UTF-8 (byte 0xC0 on line 3): it looks like Windows-1251
    ...; save it as UTF-8 ... or pass --encoding cp1251'. ``offset`` is the first bad byte
    (None: the file is valid UTF-8 but full of zero bytes, i.e. UTF-16)."""
    guess = guess_encoding(sample[:65536])
    if offset is None:
        at = ""
    else:
        line = sample[:offset].count(b"\n") + 1
        at = f" (byte 0x{sample[offset : offset + 1].hex().upper()} on line {line})"
    how = f" or pass {option} {guess}" if option else ""
    return (
        f"{where + ': ' if where else ''}the file is not UTF-8{at}: it looks like "
        f"{LABELS.get(guess, guess)}; save it as UTF-8 (Excel: Save As, 'CSV UTF-8'){how}"
    )


def decode_text(
    data: bytes,
    where: str,
    *,
    encoding: str | None = None,
    fallback: str | None = None,
    option: str | None = "--encoding",
) -> tuple[str, str]:
    """``(text, encoding used)`` of a whole file. A BOM decides; else ``encoding`` when
    given; else UTF-8, else ``fallback`` (for formats whose other encoding is fixed, as 1C's
    Windows-1251) unless the file is clearly UTF-16; else :class:`FileEncodingError` naming
    the likely encoding. ``where`` (the file's name, or '') starts the messages; ``option``
    is how the user names an encoding (None: they cannot)."""
    enc = bom_encoding(data[:4]) or (normalise_encoding(encoding) if encoding else None)
    if enc is not None:
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise FileEncodingError(
                f"{where + ': ' if where else ''}the file is not {enc}: byte "
                f"0x{data[exc.start : exc.start + 1].hex().upper()} on line {line} "
                "cannot be read in it"
            ) from exc
    head = data[:65536]
    if looks_utf16(head):
        raise FileEncodingError(not_utf8_message(data, None, where, option=option), "utf-16")
    bad = first_bad_utf8(data, complete=True)
    if bad is None:
        return data.decode("utf-8"), "utf-8"
    if fallback is not None:
        try:
            return data.decode(fallback), fallback
        except UnicodeDecodeError:
            pass
    raise FileEncodingError(not_utf8_message(data, bad, where, option=option), guess_encoding(head))
