"""Kubernetes resource quantities ("500m", "1Gi", "1e3") as exact fractions."""
from __future__ import annotations

import functools
import re
from fractions import Fraction

_SUFFIXES = {
    "": Fraction(1), "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18),
    "Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30), "Ti": Fraction(2**40),
    "Pi": Fraction(2**50), "Ei": Fraction(2**60),
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$")


# The longest quantity text `parse_quantity` keeps parsed: "100m", "64Mi", "1.5Gi"; bounds the cache.
_CACHED_TEXT = 32


def parse_quantity(text: str | int | float) -> Fraction:
    """The value of a quantity; ValueError with Kubernetes' wording when malformed."""
    if isinstance(text, str) and len(text) <= _CACHED_TEXT:
        # Every pod write parses the same few requests and limits, in validation and for its QoS class.
        return _parse_short(text)
    return _parse(text)


def _parse(text: str | int | float) -> Fraction:
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise ValueError("must match the regular expression "
                         "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    number, exponent, suffix = match.groups()
    value = Fraction(number)
    if exponent:
        value *= Fraction(10) ** int(exponent[1:])
    return value * _SUFFIXES[suffix or ""]


# Fractions are immutable: a cached one is safe to hand out.
_parse_short = functools.lru_cache(maxsize=1024)(_parse)


def is_quantity(text: str) -> bool:
    try:
        parse_quantity(text)
    except ValueError:
        return False
    return True


def format_cpu(value: Fraction) -> str:
    """A CPU amount as kubectl prints it: whole cores or millicores."""
    milli = value * 1000
    if milli.denominator == 1 and milli % 1000 == 0:
        return str(int(milli // 1000))
    return f"{int(-(-milli // 1))}m"


def format_bytes(value: Fraction) -> str:
    """A byte count in the largest binary suffix that divides it."""
    whole = int(value)
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = int(_SUFFIXES[suffix])
        if whole and whole % unit == 0:
            return f"{whole // unit}{suffix}"
    return str(whole)
