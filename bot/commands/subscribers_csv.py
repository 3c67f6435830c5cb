"""The subscriber CSV of `herald subscribers import|export`: parsing, validation, formatting."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from bot.addresses import normalize_address, parse_channel
from bot.models import Channel, Subscriber

HEADER = ("channel", "address", "breaking", "daily")
REQUIRED = frozenset({"channel", "address"})
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


class ImportRow(NamedTuple):
    """One valid subscriber of the file; imported as confirmed (active)."""

    channel: Channel
    address: str
    breaking: bool
    daily: bool


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
        raise CsvHeaderError(f"line 1: the first line must be the header {','.join(HEADER)}")
    unknown = [n for n in names if n not in HEADER]
    missing = REQUIRED - set(names)
    if unknown or missing or len(set(names)) != len(names):
        raise CsvHeaderError(
            f"line 1: header {','.join(record)!r} does not match {','.join(HEADER)}"
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
    return ImportRow(channel, address, flags["breaking"], flags["daily"])


def parse_csv(lines: Iterable[str]) -> Iterator[ImportRow | RowError]:
    """Each data row in order: an ImportRow, or a RowError naming its line.

    Raises CsvHeaderError when the first non-blank line is not the expected header.
    Blank lines are skipped; a missing `breaking`/`daily` column or blank value means yes.
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
        raise CsvHeaderError(f"the file is empty; the first line must be {','.join(HEADER)}")


def _line(fields: Iterable[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(fields)
    return buffer.getvalue()


def header_line() -> str:
    """The CSV header, newline-terminated."""
    return _line(HEADER)


def subscriber_line(sub: Subscriber) -> str:
    """One subscriber as a CSV line, newline-terminated."""
    return _line(
        (
            sub.channel.value,
            sub.address,
            "true" if sub.breaking else "false",
            "true" if sub.daily else "false",
        )
    )
