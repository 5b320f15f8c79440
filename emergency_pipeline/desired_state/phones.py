"""Phone number cells -> E.164, a Telnyx number id, or a reason why neither.

The rule for a number id: the cell holds only ASCII digits (no `+`, no punctuation) and, read as a
national number of the default region, it is not even a *possible* number (too short or too long
for that numbering plan; Telnyx ids are 19-digit strings). A digit string that is a valid number is
a phone number; one that is possible but invalid (a typo'd area code) is rejected, not taken as an
id.

Speed: phonenumbers costs ~70 us a value, 70 s for a million. NANP numbers (`+1` and ten digits
starting 2-9, with or without spaces, brackets, dots and dashes; and, when the default region is
itself NANP, the national ways of writing them: ten digits or 1 and ten digits, punctuated alike)
are checked in bulk against the same metadata patterns phonenumbers uses (same region order, same
type patterns); only values that fail that fast check go through phonenumbers itself, once per
distinct value. The fast path can only say "valid": a false "invalid" merely costs a slow look-up,
and tests check it against phonenumbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata, ValidationResult
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from .excel import FIX as EXCEL_FIX
from .excel import SCIENTIFIC, mangled_id

_FAST = re.compile(r"\+1[2-9][0-9]{9}")
_PUNCTUATION = str.maketrans("", "", " ().-")
_INTERNATIONAL = re.compile(r"\+1([2-9][0-9]{9})")
_NATIONAL = re.compile(r"1?([2-9][0-9]{9})")
_FLOATY = re.compile(r"([0-9]+)\.0+")          # 19705555098.0: a float written out as text


@dataclass(frozen=True)
class Parsed:
    e164: str | None = None
    number_id: str | None = None
    reason: str | None = None
    fix: str | None = None


_FIX_NUMBER = ("write the number in E.164 (+19705555098) or in the national format of region {r}, "
               "or give the Telnyx number id")


@lru_cache(maxsize=None)
def _region_regex(region: str) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
    """(leading-digits regex, "type known" regex for ten-digit numbers) of a NANP region.

    phonenumbers' _number_type_helper says a number's type is known when it matches the general
    description and then any one of the type descriptions (each gated by its possible lengths);
    for a union, the order of the types does not matter, so one regex does it: a lookahead for
    the general pattern, then the alternation of the type patterns.
    """
    md = PhoneMetadata.metadata_for_region(region, None)
    if md is None:
        return None, None
    lead = re.compile(md.leading_digits) if md.leading_digits is not None else None

    def usable(desc) -> bool:
        return (desc is not None and bool(desc.national_number_pattern)
                and (len(desc.possible_length) == 0 or 10 in desc.possible_length))

    if not usable(md.general_desc):
        return lead, None
    types = [getattr(md, t) for t in _TYPES]
    parts = [f"(?:{d.national_number_pattern})" for d in types if usable(d)]
    if not parts:
        return lead, None
    known = re.compile(f"(?=(?:{md.general_desc.national_number_pattern})\\Z)(?:{'|'.join(parts)})")
    return lead, known


_TYPES = ("fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "voip",
          "personal_number", "pager", "uan", "voicemail")


def _mask(rx: re.Pattern[str] | None, values: np.ndarray, full: bool) -> np.ndarray:
    if rx is None:
        return np.zeros(len(values), dtype=bool)
    f = rx.fullmatch if full else rx.match
    return np.fromiter((f(v) is not None for v in values), bool, len(values))


def nanp_valid(national: pd.Series) -> np.ndarray:
    """Validity of ten-digit NANP national numbers, as phonenumbers.is_valid_number decides it:
    the first region (in phonenumbers' order) whose leading digits match, or, for a region
    without leading digits, whose types know the number, decides; valid if its types know it."""
    values = national.to_numpy(dtype=object)
    valid = np.zeros(len(values), dtype=bool)
    undecided = np.ones(len(values), dtype=bool)
    for region in COUNTRY_CODE_TO_REGION_CODE[1]:
        idx = np.flatnonzero(undecided)
        if len(idx) == 0:
            break
        lead, known_rx = _region_regex(region)
        sub = values[idx]
        if lead is not None:
            chosen = _mask(lead, sub, full=False)
            known = np.zeros(len(sub), dtype=bool)
            known[chosen] = _mask(known_rx, sub[chosen], full=True)
        else:
            known = _mask(known_rx, sub, full=True)
            chosen = known
        valid[idx[chosen]] = known[chosen]
        undecided[idx[chosen]] = False
    return valid


def nanp_digits(values: np.ndarray, national: bool) -> list[str | None]:
    """The ten national digits of each value written as a NANP number the fast path knows
    (see the module's docstring), else None; national: also the national ways of writing."""
    out: list[str | None] = []
    for v in values:
        if _FAST.fullmatch(v):                     # the usual case: nothing to strip
            out.append(v[2:])
            continue
        bare = v.translate(_PUNCTUATION)
        m = _INTERNATIONAL.fullmatch(bare) or (national and _NATIONAL.fullmatch(bare))
        out.append(m.group(1) if m else None)
    return out


@lru_cache(maxsize=None)
def _is_nanp(region: str) -> bool:
    return phonenumbers.country_code_for_region(region) == 1


def parse_one(raw: str, region: str) -> Parsed:
    """The slow, exact path for one cell (already stripped, not empty)."""
    fix = _FIX_NUMBER.format(r=region)
    value = raw
    m = _FLOATY.fullmatch(value)
    if m:
        value = m.group(1)
    if SCIENTIFIC.fullmatch(value):
        return Parsed(reason=f"number in scientific notation ({raw}): its digits may be lost",
                      fix="format the column as Text in the spreadsheet and type the full number")
    digits_only = value.isascii() and value.isdigit()
    try:
        num = phonenumbers.parse(value, region)
    except NumberParseException as exc:
        if digits_only:
            return _number_id(value, raw)
        return Parsed(reason=f"not a phone number ({exc._msg})", fix=fix)
    if num.extension:
        return Parsed(reason="has an extension; emergency settings apply to the whole number",
                      fix="remove the extension")
    if phonenumbers.is_valid_number(num):
        return Parsed(e164=phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164))
    possible = phonenumbers.is_possible_number_with_reason(num)
    if digits_only and possible not in (ValidationResult.IS_POSSIBLE,
                                        ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
        return _number_id(value, raw)
    why = {
        ValidationResult.TOO_SHORT: "too short",
        ValidationResult.TOO_LONG: "too long",
        ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
        ValidationResult.INVALID_LENGTH: "wrong length",
        ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "a local number without its area code",
    }.get(possible, "not a valid (assigned) number")
    shown = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    return Parsed(reason=f"invalid phone number: {why} (read as {shown}, region {region})", fix=fix)


def _number_id(value: str, raw: str) -> Parsed:
    """An id, unless a spreadsheet has visibly rounded it (the cell as written tells)."""
    why = mangled_id(raw) or mangled_id(value)
    return Parsed(reason=why, fix=EXCEL_FIX) if why else Parsed(number_id=value)


_DROP_INVISIBLE = {ord(c): None for c in "\u200b\u200c\u200d\u2060\ufeff"}


def clean(raw: pd.Series) -> pd.Series:
    """Strip spaces and invisible characters that copy/paste brings along ("" for missing)."""
    values = raw.to_numpy(dtype=object)
    try:
        joined = "\x00".join(values)      # also proves every cell is text (the readers' promise)
    except TypeError:
        values = np.array(["" if v is None or v != v else str(v) for v in values], dtype=object)
        joined = "\x00".join(values)
    if any(chr(c) in joined for c in _DROP_INVISIBLE):
        out = [v.translate(_DROP_INVISIBLE).strip() for v in values]
    else:
        out = [v.strip() for v in values]
    return pd.Series(out, index=raw.index, dtype=object)


def map_distinct(values: pd.Series, fn) -> pd.Series:
    """fn applied once per distinct value (columns of flags or addresses repeat a lot)."""
    codes, uniques = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=False)
    mapped = np.array([fn(u) for u in uniques] + [None], dtype=object)
    return pd.Series(mapped[codes], index=values.index, dtype=object)


def parse_phones(cleaned: pd.Series, region: str) -> pd.DataFrame:
    """Columns e164, number_id, reason, fix (None where not applicable) aligned to `cleaned`."""
    values = cleaned.to_numpy(dtype=object)
    n = len(values)
    e164 = np.full(n, None, dtype=object)
    number_id = np.full(n, None, dtype=object)
    reason = np.full(n, None, dtype=object)
    fix = np.full(n, None, dtype=object)

    tens = nanp_digits(values, national=_is_nanp(region))
    fast = np.fromiter((t is not None for t in tens), bool, n)
    if fast.any():
        idx = np.flatnonzero(fast)
        ok = nanp_valid(pd.Series([tens[i] for i in idx], dtype=object))
        e164[idx[ok]] = ["+1" + tens[i] for i in idx[ok]]
        fast[idx[~ok]] = False
    empty = values == ""
    reason[empty] = "missing phone number"
    fix[empty] = _FIX_NUMBER.format(r=region)

    slow = np.flatnonzero(~fast & ~empty)
    cache: dict[str, Parsed] = {}
    for i in slow:
        v = values[i]
        p = cache.get(v)
        if p is None:
            p = cache[v] = parse_one(v, region)
        e164[i], number_id[i], reason[i], fix[i] = p.e164, p.number_id, p.reason, p.fix
    return pd.DataFrame({"e164": e164, "number_id": number_id, "reason": reason, "fix": fix},
                        index=cleaned.index)
