"""Jekyll's Liquid filters (the common ones), as plain functions bound to a site."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote, quote_plus

from liquid import is_undefined

from bot.settings import Site
from bot.sources.jekyll import rules as jekyll

_ABSOLUTE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def base_parts(site: Site) -> dict[str, str]:
    """`url` (origin) and `baseurl` such that url + baseurl is Site.url."""
    baseurl = str(site.config.get("baseurl") or "").strip().rstrip("/")
    if baseurl and not baseurl.startswith("/"):
        baseurl = "/" + baseurl
    if baseurl and site.url.endswith(baseurl):
        return {"url": site.url[: -len(baseurl)], "baseurl": baseurl}
    return {"url": site.url, "baseurl": ""}


def _text(value: object) -> str:
    return "" if value is None or is_undefined(value) else str(value)


def _escape_url(value: str) -> str:
    return quote(value, safe="-._~!$&'()*+,;=:@/%?#[]")


def _time(value: object, site: Site) -> datetime | None:
    if is_undefined(value) or value is None or value == "":
        return None
    if isinstance(value, datetime | date):
        return jekyll.parse_date(value, site.tz)
    if str(value) in {"now", "today"}:
        return datetime.now(site.tz)
    return jekyll.parse_date(str(value), site.tz)


def _ordinal(day: int) -> str:
    if 11 <= day % 100 <= 13:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def _stringify_date(value: object, site: Site, month: str, kind: Any, style: Any) -> str:
    when = _time(value, site)
    if when is None:
        return _text(value)
    if kind == "ordinal":
        day = f"{when.day}{_ordinal(when.day)}"
        if style == "US":
            return when.strftime(f"{month} {day}, %Y")
        return when.strftime(f"{day} {month} %Y")
    return when.strftime(f"%d {month} %Y")


def _get(item: object, key: str) -> object:
    return item.get(key) if isinstance(item, Mapping) else None


def _items(value: object) -> list[Any]:
    if isinstance(value, Mapping):
        return list(value.values())
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        return list(value)
    return []


def _where(value: object, prop: object, target: object = None) -> list[Any]:
    wanted = _text(target)
    out = []
    for item in _items(value):
        got = _get(item, _text(prop))
        if isinstance(got, list | tuple):
            if wanted in (_text(g) for g in got):
                out.append(item)
        elif _text(got) == wanted:
            out.append(item)
    return out


def _group_by(value: object, prop: object) -> list[dict[str, Any]]:
    groups: dict[str, list[Any]] = {}
    for item in _items(value):
        groups.setdefault(_text(_get(item, _text(prop))), []).append(item)
    return [{"name": k, "items": v, "size": len(v)} for k, v in groups.items()]


def _sentence(value: object, connector: object = "and") -> str:
    words = [_text(v) for v in _items(value)]
    if len(words) <= 2:
        return f" {connector} ".join(words)
    return f"{', '.join(words[:-1])}, {connector} {words[-1]}"


def _xml_escape(value: object) -> str:
    text = _text(value)
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;")):
        text = text.replace(char, entity)
    return text.replace("'", "&#39;")


def _jsonify(value: object) -> str:
    return json.dumps(None if is_undefined(value) else value, default=str, ensure_ascii=False)


def filters(site: Site) -> dict[str, Callable[..., Any]]:
    """Every Jekyll filter Herald renders, by name."""
    parts = base_parts(site)

    def relative_url(value: object) -> str:
        text = _text(value)
        if _ABSOLUTE_RE.match(text) or text.startswith("//"):
            return text
        path = text if not text or text.startswith("/") else "/" + text
        return _escape_url(parts["baseurl"] + path)

    def absolute_url(value: object) -> str:
        text = _text(value)
        if _ABSOLUTE_RE.match(text) or text.startswith("//"):
            return text
        return parts["url"] + relative_url(text)

    def date_to_xmlschema(value: object) -> str:
        when = _time(value, site)
        return when.isoformat(timespec="seconds") if when else _text(value)

    def date_to_rfc822(value: object) -> str:
        when = _time(value, site)
        return format_datetime(when) if when else _text(value)

    return {
        "relative_url": relative_url,
        "absolute_url": absolute_url,
        "date_to_string": lambda v, kind=None, style=None: _stringify_date(
            v, site, "%b", kind, style
        ),
        "date_to_long_string": lambda v, kind=None, style=None: _stringify_date(
            v, site, "%B", kind, style
        ),
        "date_to_xmlschema": date_to_xmlschema,
        "date_to_rfc822": date_to_rfc822,
        "slugify": lambda v, mode="default", cased=False: jekyll.slugify(
            _text(v), _text(mode) or "default", cased=bool(cased)
        ),
        "xml_escape": _xml_escape,
        "cgi_escape": lambda v: quote_plus(_text(v)),
        "uri_escape": lambda v: _escape_url(_text(v)),
        "jsonify": _jsonify,
        "inspect": _jsonify,
        # The body stays Markdown; the formatter turns it into HTML later.
        "markdownify": _text,
        "smartify": _text,
        "normalize_whitespace": lambda v: re.sub(r"\s+", " ", _text(v)).strip(),
        "number_of_words": lambda v, mode=None: len(_text(v).split()),
        "array_to_sentence_string": _sentence,
        "where": _where,
        "group_by": _group_by,
        "to_integer": lambda v: int(float(_text(v) or 0)),
        "push": lambda v, x: [*_items(v), x],
        "pop": lambda v, n=1: _items(v)[: -int(n)] if int(n) else _items(v),
        "shift": lambda v, n=1: _items(v)[int(n) :],
        "unshift": lambda v, x: [x, *_items(v)],
    }
