"""Ruby's `Time.parse`, ported: how Jekyll reads a date that is a string.

Jekyll's `Utils.parse_date` is `Time.parse(value.to_s).localtime`, and `Time.parse` is
Ruby's `Date._parse` (date_parse.c: a row of forgiving sub-parsers, each blanking what it
matched) followed by `Time.make_time` (time.rb: missing fields from now, the zone by
`Time.zone_offset`, else the local zone). This module follows both, so a post dated
`2023-01-29 18:30:22 2023 -0800` (a real one, published on jekyllrb.com) is read as Jekyll
reads it: 18:30:22 in the site's zone, the offset ignored because it does not follow the time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from fractions import Fraction

_FLAGS = re.IGNORECASE | re.ASCII
_DAYS = "sun|mon|tue|wed|thu|fri|sat"
_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
_ERA = r"(c(?:e|\.e\.)|b(?:ce|\.c\.e\.)|a(?:d|\.d\.)|b(?:c|\.c\.))?"

# date__parse: everything but these characters becomes one space first.
_JUNK = re.compile(r"[^-+',./:@A-Za-z0-9\[\]]+")
_DAY = re.compile(rf"\b({_DAYS})[^-/\d\s]*", _FLAGS)
_TIME = re.compile(
    r"("
    r"(?:\d+\s*:\s*\d+(?:\s*:\s*\d+(?:[,.]\d*)?)?|\d+\s*h(?:\s*\d+m?(?:\s*\d+s?)?)?)"
    r"(?:\s*[ap](?:m\b|\.m\.))?"
    r"|\d+\s*[ap](?:m\b|\.m\.)"
    r")"
    r"(?:\s*("
    r"(?:gmt|utc?)?[-+]\d+(?:[,.:]\d+(?::\d+)?)?"
    r"|(?-i:[A-Za-z.\s]+)(?:standard|daylight)\stime\b"
    r"|(?-i:[A-Za-z]+)(?:\sdst)?\b"
    r"))?",
    _FLAGS,
)
_TIME_PARTS = re.compile(
    r"\A(\d+)h?(?:\s*:?\s*(\d+)m?(?:\s*:?\s*(\d+)(?:[,.](\d+))?s?)?)?"
    r"(?:\s*([ap])(?:m\b|\.m\.))?",
    _FLAGS,
)
_EU = re.compile(
    rf"('?\d+)[^-\d\s]*\s*({_MONTHS})[^-\d\s']*"
    rf"(?:\s*{_ERA}\s*('?-?\d+(?:(?:st|nd|rd|th)\b)?))?",
    _FLAGS,
)
_US = re.compile(
    rf"\b({_MONTHS})[^-\d\s']*\s*('?\d+)[^-\d\s']*(?:\s*,?\s*{_ERA}\s*('?-?\d+))?", _FLAGS
)
_ISO = re.compile(r"('?[-+]?\d+)-(\d+)-('?-?\d+)", re.ASCII)
_JIS = re.compile(r"\b([mtsh])(\d+)\.(\d+)\.(\d+)", _FLAGS)
_VMS11 = re.compile(rf"('?-?\d+)-({_MONTHS})[^-/.]*-('?-?\d+)", _FLAGS)
_VMS12 = re.compile(rf"\b({_MONTHS})[^-/.]*-('?-?\d+)(?:-('?-?\d+))?", _FLAGS)
_SLA = re.compile(r"('?-?\d+)/\s*('?\d+)(?:\D\s*('?-?\d+))?", _FLAGS)
_DOT = re.compile(r"('?-?\d+)\.\s*('?\d+)\.\s*('?-?\d+)", _FLAGS)
_ISO21 = re.compile(r"\b(\d{2}|\d{4})?-?w(\d{2})(?:-?(\d))?\b", _FLAGS)
_ISO22 = re.compile(r"-w-(\d)\b", _FLAGS)
_ISO23 = re.compile(r"--(\d{2})?-(\d{2})\b", re.ASCII)
_ISO24 = re.compile(r"--(\d{2})(\d{2})?\b", re.ASCII)
_ISO25_NOT = re.compile(r"[,.](\d{2}|\d{4})-\d{3}\b", re.ASCII)
_ISO25 = re.compile(r"\b(\d{2}|\d{4})-(\d{3})\b", re.ASCII)
_ISO26_NOT = re.compile(r"\d-\d{3}\b", re.ASCII)
_ISO26 = re.compile(r"\b-(\d{3})\b", re.ASCII)
_YEAR = re.compile(r"'(\d+)\b", re.ASCII)
_MON = re.compile(rf"\b({_MONTHS})\S*", _FLAGS)
_MDAY = re.compile(r"(\d+)(st|nd|rd|th)\b", _FLAGS)
_DDD = re.compile(
    r"([-+]?)(\d{2,14})(?:\s*t?\s*(\d{2,6})?(?:[,.](\d*))?)?"
    r"(?:\s*(z\b|[-+]\d{1,4}\b|\[[-+]?\d[^\]]*\]))?",
    _FLAGS,
)
_BC = re.compile(r"\b(bc\b|bce\b|b\.c\.|b\.c\.e\.)", _FLAGS)
_FRAG = re.compile(r"\A\s*(\d{1,2})\s*\Z", _FLAGS)

# Time::ZoneOffset, in hours.
_ZONE_OFFSET = {
    "UTC": 0, "Z": 0, "UT": 0, "GMT": 0,
    "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
    "A": 1, "B": 2, "C": 3, "D": 4, "E": 5, "F": 6, "G": 7, "H": 8, "I": 9, "K": 10,
    "L": 11, "M": 12, "N": -1, "O": -2, "P": -3, "Q": -4, "R": -5, "S": -6, "T": -7,
    "U": -8, "V": -9, "W": -10, "X": -11, "Y": -12,
}  # fmt: skip
_ZONE_HHMM = re.compile(r"\A([+-])(\d\d)(:?)(\d\d)(?:\3(\d\d))?\Z", re.ASCII)
_ZONE_HH = re.compile(r"\A[+-]\d\d\Z", re.ASCII)

Fields = dict[str, object]
_KINDS = {
    "alpha": re.compile("[A-Za-z]"),
    "digit": re.compile("[0-9]"),
    "dash": re.compile("-"),
    "dot": re.compile(r"\."),
    "slash": re.compile("/"),
}
# The common shapes (`2026-07-01 10:00:00 +0200`), for which Date._parse can only find
# these fields: read directly, the same as the whole parse gives, several times faster.
_PLAIN = re.compile(
    r"\s*(\d{4})-(\d\d?)-(\d\d?)(?:[ T](\d\d?):(\d\d)(?::(\d\d))?)?"
    r"(?:\s*(Z|UTC|GMT|[-+]\d\d:?\d\d))?\s*",
    re.ASCII,
)


class TimeParseError(ValueError):
    """`Time.parse` would raise ArgumentError for this text."""


class _Text:
    """The string date__parse works on; each sub-parser blanks the first match it uses."""

    def __init__(self, text: str) -> None:
        self.value = _JUNK.sub(" ", text)

    def has(self, *kinds: str) -> bool:
        """date__parse's check_class: the string holds each kind of character."""
        return all(_KINDS[k].search(self.value) for k in kinds)

    def sub(self, pattern: re.Pattern[str], found: Callable[[re.Match[str]], object]) -> bool:
        match = pattern.search(self.value)
        if match is None:
            return False
        self.value = self.value[: match.start()] + " " + self.value[match.end() :]
        found(match)
        return True


def _number(text: str) -> int:
    """rb_cstr_to_inum without a bad-input check: the leading signed digits, else 0."""
    match = re.match(r"[-+]?\d+", text)
    return int(match.group(0)) if match else 0


def _month(name: str) -> str:
    return str(_MONTHS.split("|").index(name[:3].lower()) + 1)


def _first(text: str, accept: Callable[[str], bool]) -> int | None:
    for i, ch in enumerate(text):
        if accept(ch):
            return i
    return None


def _digits_from(text: str, start: int) -> int:
    end = start
    while end < len(text) and text[end].isascii() and text[end].isdigit():
        end += 1
    return end


def _s3e(h: Fields, y: str | None, m: str | None, d: str | None, bc: bool) -> None:
    """date_parse.c s3e: decide which of three numbers is the year, month and day."""
    comp: bool | None = None

    def sign_or_digit(ch: str) -> bool:
        return ch in "+-" or (ch.isascii() and ch.isdigit())

    if y is not None and m is not None and d is None:
        y, m, d = None, y, m
    if y is None:
        if d is not None and len(d) > 2:
            y, d = d, None
        if d is not None and d[:1] == "'":
            y, d = d, None
    if y is not None:
        start = _first(y, sign_or_digit)
        if start is not None:
            digits = start + 1 if y[start] in "+-" else start
            end = _digits_from(y, digits)
            if end < len(y):
                number = y[start:end]
                y, d = d, number
    if m is not None and (m[:1] == "'" or len(m) > 2):
        y, m, d = m, d, y  # us -> be
    if d is not None and (d[:1] == "'" or len(d) > 2):
        y, d = d, y
    if y is not None:
        start = _first(y, sign_or_digit)
        if start is not None:
            signed = y[start] in "+-"
            digits = start + 1 if signed else start
            end = _digits_from(y, digits)
            if signed or end - digits > 2:
                comp = False
            h["year"] = _number(y[start:end])
    if bc:
        h["_bc"] = True
    for key, value in (("mon", m), ("mday", d)):
        if value is not None:
            start = _first(value, lambda ch: ch.isascii() and ch.isdigit())
            if start is not None:
                h[key] = int(value[start : _digits_from(value, start)])
    if comp is not None:
        h["_comp"] = comp


def _is_bc(era: str | None) -> bool:
    return era is not None and era[:1] in "Bb"


def _on_time(h: Fields) -> Callable[[re.Match[str]], object]:
    def found(m: re.Match[str]) -> None:
        if m.group(2) is not None:
            h["zone"] = m.group(2)
        parts = _TIME_PARTS.match(m.group(1))
        if parts is None:
            return
        hour = int(parts.group(1))
        if parts.group(5) is not None:
            hour = hour % 12 + (12 if parts.group(5) in "Pp" else 0)
        h["hour"] = hour
        if parts.group(2) is not None:
            h["min"] = int(parts.group(2))
        if parts.group(3) is not None:
            h["sec"] = int(parts.group(3))
        if parts.group(4) is not None:
            h["sec_fraction"] = Fraction(int(parts.group(4)), 10 ** len(parts.group(4)))

    return found


def _on_ddd(h: Fields) -> Callable[[re.Match[str]], object]:
    def n(text: str, start: int, width: int) -> int:
        return int(text[start : start + width])

    def found(m: re.Match[str]) -> None:
        sign, s2, s3, s4, s5 = m.groups()
        neg = sign == "-"
        size = len(s2)
        time_only = s3 is None and s4 is not None
        if size == 2:
            h["sec" if time_only else "mday"] = n(s2, 0, 2)
        elif size == 4:
            if time_only:
                h["sec"], h["min"] = n(s2, 2, 2), n(s2, 0, 2)
            else:
                h["mon"], h["mday"] = n(s2, 0, 2), n(s2, 2, 2)
        elif size == 6:
            if time_only:
                h["sec"], h["min"], h["hour"] = n(s2, 4, 2), n(s2, 2, 2), n(s2, 0, 2)
            else:
                year = n(s2, 0, 2)
                h["year"], h["mon"], h["mday"] = -year if neg else year, n(s2, 2, 2), n(s2, 4, 2)
        elif size in (8, 10, 12, 14):
            if time_only:
                h["sec"], h["min"] = n(s2, size - 2, 2), n(s2, size - 4, 2)
                h["hour"], h["mday"] = n(s2, size - 6, 2), n(s2, size - 8, 2)
                if size >= 10:
                    h["mon"] = n(s2, size - 10, 2)
                if size == 12:
                    year = n(s2, 0, 2)
                    h["year"] = -year if neg else year
                if size == 14:
                    year = n(s2, 0, 4)
                    h["year"], h["_comp"] = -year if neg else year, False
            else:
                year = n(s2, 0, 4)
                h["year"], h["mon"], h["mday"] = -year if neg else year, n(s2, 4, 2), n(s2, 6, 2)
                for key, at in (("hour", 8), ("min", 10), ("sec", 12)):
                    if size >= at + 2:
                        h[key] = n(s2, at, 2)
                h["_comp"] = False
        elif size == 3:
            if time_only:
                h["sec"], h["min"] = n(s2, 1, 2), n(s2, 0, 1)
            else:
                h["yday"] = n(s2, 0, 3)
        elif size == 5:
            if time_only:
                h["sec"], h["min"], h["hour"] = n(s2, 3, 2), n(s2, 1, 2), n(s2, 0, 1)
            else:
                year = n(s2, 0, 2)
                h["year"], h["yday"] = -year if neg else year, n(s2, 2, 3)
        elif size == 7:
            if time_only:
                h["sec"], h["min"] = n(s2, 5, 2), n(s2, 3, 2)
                h["hour"], h["mday"] = n(s2, 1, 2), n(s2, 0, 1)
            else:
                year = n(s2, 0, 4)
                h["year"], h["yday"] = -year if neg else year, n(s2, 4, 3)
        if s3 is not None and len(s3) in (2, 4, 6):
            size3 = len(s3)
            if s4 is not None:
                h["sec"] = n(s3, size3 - 2, 2)
                if size3 >= 4:
                    h["min"] = n(s3, size3 - 4, 2)
                if size3 >= 6:
                    h["hour"] = n(s3, 0, 2)
            else:
                h["hour"] = n(s3, 0, 2)
                if size3 >= 4:
                    h["min"] = n(s3, 2, 2)
                if size3 >= 6:
                    h["sec"] = n(s3, 4, 2)
        if s4 is not None:
            h["sec_fraction"] = Fraction(int(s4 or "0"), 10 ** len(s4))
        if s5 is not None:
            zone = s5
            if zone.startswith("["):
                inner = zone[1:-1]
                zone = inner.split(":", 1)[1] if ":" in inner else inner
            h["zone"] = zone

    return found


def _parse_fields(text: str) -> Fields:
    """Date._parse(text, true): the fields it finds (year, mon, mday, hour, …, zone)."""
    if plain := _PLAIN.fullmatch(text):
        names = ("year", "mon", "mday", "hour", "min", "sec")
        fields: Fields = {k: int(v) for k, v in zip(names, plain.groups(), strict=False) if v}
        if plain.group(7):
            fields["zone"] = plain.group(7)
        return fields
    s = _Text(text)
    h: Fields = {"_comp": True}

    def three(order: str, month_name: bool = False) -> Callable[[re.Match[str]], object]:
        def found(m: re.Match[str]) -> None:
            groups = dict(zip(order, m.groups(), strict=False))
            mon = groups.get("m")
            if month_name and mon is not None:
                mon = _month(mon)
            _s3e(h, groups.get("y"), mon, groups.get("d"), _is_bc(groups.get("b")))

        return found

    def put(*keys: str) -> Callable[[re.Match[str]], object]:
        def found(m: re.Match[str]) -> None:
            for key, value in zip(keys, m.groups(), strict=False):
                if key and value is not None:
                    h[key] = int(value)

        return found

    def jis(m: re.Match[str]) -> None:
        era = {"m": 1867, "t": 1911, "s": 1925, "h": 1988}[m.group(1).lower()]
        h["year"], h["mon"], h["mday"] = int(m.group(2)) + era, int(m.group(3)), int(m.group(4))

    if s.has("alpha"):
        s.sub(_DAY, lambda m: None)
    if s.has("digit"):
        s.sub(_TIME, _on_time(h))
    parsers: list[tuple[tuple[str, ...], Callable[[], bool]]] = [
        (("alpha", "digit"), lambda: s.sub(_EU, three("dmby", True))),
        (("alpha", "digit"), lambda: s.sub(_US, three("mdby", True))),
        (("digit", "dash"), lambda: s.sub(_ISO, three("ymd"))),
        (("digit", "dot"), lambda: s.sub(_JIS, jis)),
        (("alpha", "digit", "dash"), lambda: s.sub(_VMS11, three("dmy", True))),
        (("alpha", "digit", "dash"), lambda: s.sub(_VMS12, three("mdy", True))),
        (("digit", "slash"), lambda: s.sub(_SLA, three("ymd"))),
        (("digit", "dot"), lambda: s.sub(_DOT, three("ymd"))),
        (("digit",), lambda: s.sub(_ISO21, put("", "", ""))),  # commercial weeks: unused
        (("digit",), lambda: s.sub(_ISO22, put(""))),
        (("digit",), lambda: s.sub(_ISO23, put("mon", "mday"))),
        (("digit",), lambda: s.sub(_ISO24, put("mon", "mday"))),
        (("digit",), lambda: not _ISO25_NOT.search(s.value) and s.sub(_ISO25, put("year", "yday"))),
        (("digit",), lambda: not _ISO26_NOT.search(s.value) and s.sub(_ISO26, put("yday"))),
        (("digit",), lambda: s.sub(_YEAR, put("year"))),
        (("alpha",), lambda: s.sub(_MON, lambda m: h.__setitem__("mon", int(_month(m.group(1)))))),
        (("digit",), lambda: s.sub(_MDAY, put("mday"))),
        (("digit",), lambda: s.sub(_DDD, _on_ddd(h))),
    ]  # fmt: skip
    for kinds, parse in parsers:
        if s.has(*kinds) and parse():
            break
    if s.has("alpha"):
        s.sub(_BC, lambda m: h.__setitem__("_bc", True))
    if s.has("digit"):

        def frag(m: re.Match[str]) -> None:
            value = int(m.group(1))
            if "hour" in h and "mday" not in h and 1 <= value <= 31:
                h["mday"] = value
            if "mday" in h and "hour" not in h and 0 <= value <= 24:
                h["hour"] = value

        s.sub(_FRAG, frag)
    year = h.get("year")
    if h.pop("_bc", False) and isinstance(year, int):
        h["year"] = year = -year + 1
    if h.pop("_comp") and isinstance(year, int) and 0 <= year <= 99:
        h["year"] = year + (1900 if year >= 69 else 2000)
    return h


def zone_offset(zone: str, year: int, tz: tzinfo) -> int | None:
    """Time.zone_offset: seconds east of UTC for a zone name or offset, None when unknown.

    Like Ruby, the local zone's own abbreviations (in January or July) count too.
    """
    upper = zone.upper()
    if match := _ZONE_HHMM.match(upper):
        sign = -1 if match.group(1) == "-" else 1
        hh, mm, ss = int(match.group(2)), int(match.group(4)), int(match.group(5) or 0)
        return sign * ((hh * 60 + mm) * 60 + ss)
    if _ZONE_HH.match(upper):
        return int(upper) * 3600
    if upper in _ZONE_OFFSET:
        return _ZONE_OFFSET[upper] * 3600
    for month in (1, 7):
        try:
            local = datetime(year, month, 1, tzinfo=tz)
        except ValueError:
            return None
        if (local.tzname() or "").upper() == upper:
            offset = local.utcoffset()
            return int(offset.total_seconds()) if offset is not None else None
    return None


def civil(year: int, mon: int, day: int, hour: int, minute: int, sec: int, usec: int) -> datetime:
    """Time.local/Time.utc's arguments as a naive datetime: days past a month's end roll over."""
    checks = (
        (1 <= mon <= 12, "mon"),
        (1 <= day <= 31, "mday"),
        (0 <= hour <= 24 and not (hour == 24 and (minute or sec)), "hour"),
        (0 <= minute <= 59, "min"),
        (0 <= sec <= 60, "sec"),
    )
    for ok, name in checks:
        if not ok:
            raise TimeParseError(f"{name} out of range")
    try:
        start = datetime(year, mon, 1)
        return start + timedelta(
            days=day - 1, hours=hour, minutes=minute, seconds=sec, microseconds=usec
        )
    except (ValueError, OverflowError) as exc:
        raise TimeParseError("year out of range") from exc


def parse(text: str, tz: tzinfo, now: datetime | None = None) -> datetime:
    """Time.parse(text) in the zone `tz`, as an aware datetime; TimeParseError as Ruby raises."""
    h = _parse_fields(text)
    keys = ("year", "yday", "mon", "mday", "hour", "min", "sec", "sec_fraction")
    if not any(k in h for k in keys):
        raise TimeParseError(f"no time information in {text!r}")
    got = {k: v for k, v in h.items() if isinstance(v, int) and not isinstance(v, bool)}
    zone = h.get("zone")
    zone_name = zone if isinstance(zone, str) else None
    current = (now or datetime.now(UTC)).astimezone(tz)
    off_year = got.get("year", current.year)
    off = zone_offset(zone_name, off_year, tz) if zone_name else None
    if off is not None and abs(off) < 86400:
        current = current.astimezone(timezone(timedelta(seconds=off)))
    yday = got.get("yday")
    if yday is not None:
        if not 1 <= yday <= 366:
            raise TimeParseError(f"yday {yday} out of range")
        when = date(got.get("year", current.year), 1, 1) + timedelta(days=yday - 1)
        if when.year != got.get("year", current.year):
            raise TimeParseError(f"yday {yday} out of range")
        got["mon"], got["mday"] = when.month, when.day
    fraction = h.get("sec_fraction")
    usec = int(fraction * 1_000_000) if isinstance(fraction, Fraction) else None
    # make_time: fields missing before the first one given come from now.
    fill = (
        ("year", current.year), ("mon", current.month), ("mday", current.day),
        ("hour", current.hour), ("min", current.minute), ("sec", current.second),
    )  # fmt: skip
    for key, value in fill:
        if key in got:
            break
        got[key] = value
    else:
        if usec is None:
            usec = current.microsecond
    year = got.get("year", 1970)
    if year != off_year and zone_name:
        off = zone_offset(zone_name, year, tz)
    naive = civil(
        year,
        got.get("mon", 1),
        got.get("mday", 1),
        got.get("hour", 0),
        got.get("min", 0),
        got.get("sec", 0),
        usec or 0,
    )
    if off is None:
        return naive.replace(tzinfo=tz)
    if abs(off) >= 86400:  # Time#localtime refuses it too
        raise TimeParseError("utc_offset out of range")
    return naive.replace(tzinfo=timezone(timedelta(seconds=off)))
