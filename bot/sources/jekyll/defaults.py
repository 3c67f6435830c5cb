"""Front matter `defaults:` from `_config.yml`, ported from Jekyll 4's FrontmatterDefaults.

A post's data is built as Jekyll's Document builds it: the categories its folders give,
then every default set whose scope matches (later and more specific sets win), then its
own front matter. Categories are a union along the way; every other key is a deep merge
in which a value of `null` keeps what was there.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bot.sources.jekyll import rules

log = logging.getLogger(__name__)

POSTS = "posts"
_DEPRECATED_TYPES = {"page": "pages", "post": "posts", "draft": "drafts"}


def valid_sets(value: object) -> tuple[dict[str, Any], ...]:
    """`defaults:` as the sets Jekyll uses: mappings with a `values` mapping; others skipped.

    A scope's singular type (`post`) becomes the plural one (`posts`), as Jekyll does.
    """
    if not isinstance(value, list):
        return ()
    sets: list[dict[str, Any]] = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("values"), dict):
            log.warning("_config.yml defaults: skipping a set that is not scope + values: %r", item)
            continue
        scope = item.get("scope")
        if isinstance(scope, dict) and "type" in scope:
            kind = str(scope["type"])
            scope = {**scope, "type": _DEPRECATED_TYPES.get(kind, kind)}
        sets.append({**item, "scope": scope if isinstance(scope, dict) else None})
    return tuple(sets)


def _sanitize(path: object) -> str:
    """FrontmatterDefaults#sanitize_path: no leading slash."""
    text = "" if path is None else str(path)
    return text[1:] if text.startswith("/") else text


@functools.lru_cache(maxsize=64)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A Dir.glob pattern (`*`, `**/`, `?`, `[…]`, `{a,b}`) as a regex for one path."""
    out: list[str] = []
    i = 0
    depth = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                out.append("[^" + body[1:] + "]" if body[:1] in "!^" else "[" + body + "]")
                i = end
        elif ch == "{":
            out.append("(?:")
            depth += 1
        elif ch == "}" and depth:
            out.append(")")
            depth -= 1
        elif ch == "," and depth:
            out.append("|")
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    out.append(")" * depth)
    try:
        return re.compile("".join(out) + r"\Z")
    except re.error:
        return re.compile(re.escape(pattern) + r"\Z")


def _globbed_prefix(path: str, pattern: str) -> bool:
    """FrontmatterDefaults#glob_scope for an existing file: some folder on its way (or the
    file itself) is what `Dir.glob(pattern)` lists, so the path starts with a glob result."""
    regex = _glob_regex(pattern)
    parts = path.split("/")
    for n in range(1, len(parts) + 1):
        prefix = "/".join(parts[:n])
        if regex.match(prefix) or (n < len(parts) and regex.match(prefix + "/")):
            return True
    return False


def _applies(scope: Mapping[str, Any] | None, path: str, kind: str) -> bool:
    if scope is None:
        return True
    if "type" in scope and str(scope["type"]) != kind:
        return False
    scope_path = scope.get("path")
    if not isinstance(scope_path, str) or not scope_path:
        return True
    if "*" in scope_path:
        return _globbed_prefix(_sanitize(path), _sanitize(scope_path))
    # Jekyll compares with the scope path as written: `/_posts` never matches.
    return _sanitize(path).startswith(scope_path)


def _has_precedence(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
    if old is None:
        return True
    new, old = new or {}, old or {}
    new_path, old_path = _sanitize(new.get("path")), _sanitize(old.get("path"))
    if len(new_path) != len(old_path):
        return len(new_path) >= len(old_path)
    return "type" in new or "type" not in old


def deep_merge(master: Mapping[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    """Utils.deep_merge_hashes: `other` wins, mappings merge, a `null` keeps the old value."""
    merged = dict(master)
    for key, value in other.items():
        old = merged.get(key)
        if value is None and key in merged:
            continue
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(old, value)
        else:
            merged[key] = value
    return merged


def for_path(sets: Sequence[Mapping[str, Any]], path: str, kind: str = POSTS) -> dict[str, Any]:
    """FrontmatterDefaults#all: the default values for a document at `path` (site-relative)."""
    values: dict[str, Any] = {}
    old_scope: Mapping[str, Any] | None = None
    for item in sets:
        scope = item.get("scope")
        if not _applies(scope, path, kind):
            continue
        if _has_precedence(old_scope, scope):
            values = deep_merge(values, item["values"])
            old_scope = scope
        else:
            values = deep_merge(item["values"], values)
    return values


def _category_list(value: object) -> list[Any]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def _merge_data(data: dict[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    """Document#merge_data!: categories are a union (strings split), the rest a deep merge."""
    if other.get("categories") is not None:
        incoming = _category_list(other["categories"])
        if isinstance(data.get("categories"), list):
            incoming = list(dict.fromkeys([*data["categories"], *incoming]))
        other = {**other, "categories": incoming}
    return deep_merge(data, other)


def document_data(
    sets: Sequence[Mapping[str, Any]],
    path: str,
    front: Mapping[str, Any],
    folder_categories: Iterable[str] = (),
) -> dict[str, Any]:
    """A post's data: its folders' categories, the matching defaults, then its front matter."""
    data: dict[str, Any] = {"categories": list(folder_categories)}
    if sets:
        data = _merge_data(data, for_path(sets, path))
    return _merge_data(data, front)


def post_data(
    sets: Sequence[Mapping[str, Any]], rel: str, front: Mapping[str, Any]
) -> dict[str, Any]:
    """The data of the post Herald keys `rel` (see rules.site_path), as Jekyll builds it."""
    path = rules.site_path(rel)
    return document_data(sets, path, front, rules.folder_categories(path))
