"""Repairs for Liquid that would not parse: what Jekyll would refuse, Herald drops."""

from __future__ import annotations

import re

# Complete raw/comment blocks are opaque; otherwise one tag or one output statement.
MARKUP_RE = re.compile(
    r"(?P<opaque>\{%-?\s*(?P<o>raw|comment)\s*-?%\}.*?\{%-?\s*end(?P=o)\s*-?%\})"
    r"|\{%-?\s*(?P<name>[A-Za-z_#]\w*)?(?:[^%]|%(?!\}))*?-?%\}"
    r"|\{\{.*?\}\}",
    re.S,
)
_RAW_BODY_RE = re.compile(r"\{%-?\s*raw\s*-?%\}(.*?)\{%-?\s*endraw\s*-?%\}", re.S)
_BLOCKS = frozenset({"if", "unless", "case", "for", "tablerow", "capture", "highlight"})
_BLOCKS_ALL = _BLOCKS | {"raw", "comment"}


def balance(source: str) -> tuple[str, list[str]]:
    """Drop block tags that are never closed and end tags that close nothing."""
    problems: list[str] = []
    spans: list[tuple[int, int, str]] = []
    stack: list[tuple[int, str]] = []
    drop: set[int] = set()
    for match in MARKUP_RE.finditer(source):
        name = match.group("name")
        if match.group("opaque") or not name:
            continue
        index = len(spans)
        spans.append((match.start(), match.end(), name))
        if name in _BLOCKS_ALL:
            stack.append((index, name))
        elif name.startswith("end") and name[3:] in _BLOCKS_ALL:
            opener = name[3:]
            if not any(n == opener for _, n in stack):
                drop.add(index)
                problems.append(f"{{% {name} %}} closes nothing")
                continue
            while stack:
                top, top_name = stack.pop()
                if top_name == opener:
                    break
                drop.add(top)
                problems.append(f"{{% {top_name} %}} is never closed")
    for top, top_name in stack:
        drop.add(top)
        problems.append(f"{{% {top_name} %}} is never closed")
    if not drop:
        return source, problems
    out: list[str] = []
    pos = 0
    for index in sorted(drop):
        start, end, _ = spans[index]
        out.append(source[pos:start])
        pos = end
    out.append(source[pos:])
    return "".join(out), problems


def strip_all(source: str) -> str:
    """Last resort: keep raw blocks' text and remove every other piece of Liquid."""

    def keep(match: re.Match[str]) -> str:
        if match.group("o") == "raw":
            raw = _RAW_BODY_RE.match(match.group(0))
            return raw.group(1) if raw else ""
        return ""

    return MARKUP_RE.sub(keep, source).replace("{{", "").replace("{%", "")
