"""The text of a CSV file, whatever Excel or a script saved it as.

UTF-8 (with or without BOM) is taken directly; anything else is detected by charset-normalizer
among the encodings spreadsheets are really exported in: UTF-16 LE/BE with BOM ("Unicode text"),
UTF-32, and the single-byte Western code pages (Windows-1252, Latin-1, Mac Roman)."""

from __future__ import annotations

from pathlib import Path

from .errors import DesiredStateError

# Restricting detection to these keeps a short, mostly-ASCII sheet from being "detected" as
# some Cyrillic or Asian code page because of one accented name.
CANDIDATES = ["utf_8", "utf_16", "utf_32", "cp1252", "latin_1", "mac_roman"]


def detect_encoding(data: bytes, path: Path) -> str:
    """The Python codec of a file that is not UTF-8 (data: the whole file, or its first part)."""
    from charset_normalizer import from_bytes

    best = from_bytes(data, cp_isolation=CANDIDATES).best()
    if best is None:
        raise DesiredStateError(
            f"{path}: cannot tell the file's text encoding (not UTF-8, UTF-16 or a Western "
            "code page); save it from Excel as 'CSV UTF-8 (Comma delimited)'")
    return best.encoding


def decode_csv(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8-sig")      # the usual case, and the fastest
    except UnicodeDecodeError:
        pass
    return data.decode(detect_encoding(data, path))
