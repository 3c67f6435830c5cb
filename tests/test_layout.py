"""The package layout holds: every import points forward along the flow, with no cycles."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parents[1] / "bot"

# The leaves at the top of bot/: plain data, settings and small shared tools.
LEAVES = {
    "settings", "models", "errors", "tokens", "metrics", "schedule", "health", "addresses",
    "choices",
}  # fmt: skip
ROOTS = {"cli", "app", "__main__", "__init__"}
# What each stage may import besides the leaves (../shared/STYLE.md, "The flow is the layout").
ALLOWED: dict[str, set[str]] = {
    "leaf": set(),
    "sources": set(),
    "render": set(),
    "store": set(),
    "transports": set(),
    "outbox": {"render", "store"},
    "delivery": {"store", "transports"},
    # chat is Telegram's edge: it builds the Bot and previews through the Telegram transport.
    "chat": {"render", "outbox", "store", "transports"},
    "web": {"render", "outbox", "store"},
    # bounces is inbound mail's edge: reports and complaints go straight to the store.
    "bounces": {"store"},
    "commands": {"*"},
    "root": {"*"},
}
# Third-party packages that stay in their room.
ROOMS = {
    "telegram": {"transports", "chat"},
    "aiosqlite": {"store"},
    "asyncpg": {"store"},
    "aiosmtplib": {"transports"},
    "aiosmtpd": {"bounces"},
    "jinja2": {"render"},
    "mjml": {"render"},
    "watchfiles": {"sources"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(BOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def stage(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "root"
    top = parts[1]
    if len(parts) == 2 and top in LEAVES:
        return "leaf"
    if len(parts) == 2 and top in ROOTS:
        return "root"
    return top


def imports(path: Path) -> Iterator[tuple[str, int]]:
    """Every module `path` imports (TYPE_CHECKING and function-level ones included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module, node.lineno
            for alias in node.names:  # `from bot.chat import admin` imports bot.chat.admin
                yield f"{node.module}.{alias.name}", node.lineno


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(BOT.rglob("*.py"))}


def bot_imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    for target, line in imports(path):
        if target.startswith("bot") and target in known and target != name:
            yield target, line


def test_every_stage_imports_only_what_the_flow_allows() -> None:
    """No module imports a stage that comes later in the flow (or a sideways one)."""
    known = modules()
    wrong = []
    for name, path in known.items():
        own = stage(name)
        allowed = ALLOWED[own]
        for target, line in bot_imports(name, path, known):
            theirs = stage(target)
            if theirs in ("leaf", own) or "*" in allowed or theirs in allowed:
                continue
            if theirs == "root" and target == "bot":
                continue
            wrong.append(f"{path.relative_to(BOT.parent)}:{line} ({own}) imports {target}")
    assert wrong == []


def test_other_packages_import_the_store_not_its_modules() -> None:
    """Outside bot/store, only `bot.store` itself is imported, never a backend module."""
    known = modules()
    wrong = [
        f"{name} imports {target}"
        for name, path in known.items()
        if stage(name) != "store"
        for target, _ in bot_imports(name, path, known)
        if target.startswith("bot.store.")
    ]
    assert wrong == []


@pytest.mark.parametrize("package", sorted(ROOMS))
def test_third_party_packages_stay_in_their_room(package: str) -> None:
    """Telegram, SQL drivers, SMTP, templates and the file watcher are each used in one room."""
    wrong = []
    for name, path in modules().items():
        for target, line in imports(path):
            root = target.split(".")[0]
            if root == package and stage(name) not in ROOMS[package] | {"commands"}:
                wrong.append(f"{path.relative_to(BOT.parent)}:{line} imports {target}")
            if root == package and target.split(".")[1:2] and target.split(".")[1][:1] == "_":
                wrong.append(f"{path.relative_to(BOT.parent)}:{line} uses private {target}")
    assert wrong == []


def test_no_import_cycles() -> None:
    """The module import graph has no cycle, counting TYPE_CHECKING imports."""
    known = modules()
    graph = {name: {t for t, _ in bot_imports(name, path, known)} for name, path in known.items()}
    # A package's __init__ that re-exports its modules is not a cycle with them.
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_the_top_of_bot_holds_about_a_dozen_modules() -> None:
    """bot/ itself holds the root and the leaves only; every stage is a package."""
    top = sorted(p.stem for p in BOT.glob("*.py"))
    # 13: the root (cli, app, __main__, __init__) and nine small leaves, `choices` the last.
    assert len(top) <= 13, top
    assert set(top) <= LEAVES | ROOTS
