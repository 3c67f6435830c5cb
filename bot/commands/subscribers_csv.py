"""The subscriber CSV of `herald subscribers import|export`: parsing, validation, formatting."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from bot.addresses import normalize_address, parse_channel
from bot.choices import parse_quiet, parse_time, parse_zone, topics_of
from bot.models import Channel, Subscriber
from bot.store import ImportRow as ImportRow  # the store's row, re-exported

# The first four are the file's from before reader choices; the rest are optional.
BASIC = ("channel", "address", "breaking", "daily")
CHOICES = ("topics", "quiet", "digest_time", "timezone")
HEADER = BASIC + CHOICES
REQUIRED = frozenset({"channel", "address"})
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
# A choice column's check, blank allowed (it clears the choice).
_CHECKS: dict[str, Callable[[str], str]] = {
    "quiet": parse_quiet,
    "digest_time": parse_time,
    "timezone": parse_zone,
}


@dataclass(frozen=True)
class RowError:
    """A row that cannot be imported: the file's line number and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class CsvHeaderError(ValueError):
    """The file as a whole is unusable (no or a wrong header)."""


def parse_bool(text: str, *, default: bool = True) -> bool:
    """`true/false`, `1/0`, `yes/no` in any case; blank means `default`."""
    value = text.strip().lower()
    if not value:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a yes/no value (use true/false, 1/0 or yes/no)")


def _columns(record: list[str]) -> dict[str, int]:
    names = [name.strip().lower() for name in record]
    if names and names[0] in {c.value for c in Channel}:
        raise CsvHeaderError(f"line 1: the first line must be the header {','.join(BASIC)}")
    unknown = [n for n in names if n not in HEADER]
    missing = REQUIRED - set(names)
    if unknown or missing or len(set(names)) != len(names):
        raise CsvHeaderError(
            f"line 1: header {','.join(record)!r} does not match {','.join(BASIC)}"
            f" (with optional columns {','.join(CHOICES)})"
        )
    return {name: i for i, name in enumerate(names)}


def _row(record: list[str], columns: dict[str, int]) -> ImportRow:
    if len(record) != len(columns):
        raise ValueError(f"{len(record)} fields, the header has {len(columns)}")
    channel = parse_channel(record[columns["channel"]])
    address = normalize_address(channel, record[columns["address"]])
    flags = {
        name: parse_bool(record[columns[name]]) if name in columns else True
        for name in ("breaking", "daily")
    }
    choice = {name: _choice(name, record, columns) for name in _CHECKS}
    topics = topics_of(record[columns["topics"]]) if "topics" in columns else None
    return ImportRow(
        channel,
        address,
        flags["breaking"],
        flags["daily"],
        topics=topics,
        quiet=choice["quiet"],
        digest_at=choice["digest_time"],
        tz=choice["timezone"],
    )


def _choice(name: str, record: list[str], columns: dict[str, int]) -> str | None:
    """A choice column's value checked: None when the file has no such column (the known
    subscriber's choice stays), "" when blank (cleared: the site's default)."""
    if name not in columns:
        return None
    text = record[columns[name]].strip()
    if not text:
        return ""
    try:
        return _CHECKS[name](text)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def parse_csv(lines: Iterable[str]) -> Iterator[ImportRow | RowError]:
    """Each data row in order: an ImportRow, or a RowError naming its line.

    Raises CsvHeaderError when the first non-blank line is not the expected header.
    Blank lines are skipped; a missing `breaking`/`daily` column or blank value means yes.
    A missing choice column (topics `a;b`, quiet, digest_time, timezone) leaves a known
    subscriber's choice as it is; a blank value clears it.
    """
    reader = csv.reader(lines)
    columns: dict[str, int] | None = None
    last_line = 0
    for record in reader:
        line, last_line = last_line + 1, reader.line_num
        if not any(field.strip() for field in record):
            continue
        if columns is None:
            columns = _columns(record)
            continue
        try:
            yield _row(record, columns)
        except ValueError as exc:
            yield RowError(line, str(exc))
    if columns is None:
        raise CsvHeaderError(f"the file is empty; the first line must be {','.join(BASIC)}")


def _line(fields: Iterable[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(fields)
    return buffer.getvalue()


def header_line() -> str:
    """The CSV header, newline-terminated."""
    return _line(HEADER)


def subscriber_line(sub: Subscriber) -> str:
    """One subscriber as a CSV line (every column of HEADER), newline-terminated."""
    return _line(
        (
            sub.channel.value,
            sub.address,
            "true" if sub.breaking else "false",
            "true" if sub.daily else "false",
            ";".join(sub.topics),
            sub.quiet or "",
            sub.digest_at or "",
            sub.tz or "",
        )
    )
