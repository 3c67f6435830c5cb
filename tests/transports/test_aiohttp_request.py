"""AiohttpRequest is built on python-telegram-bot's public request API only."""

from __future__ import annotations

import ast
from pathlib import Path

import bot

BOT_DIR = Path(bot.__file__).parent


def _private_ptb_imports(source: str) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return [n for n in names if n.startswith("telegram") and "._" in n]


def test_no_private_ptb_imports() -> None:
    """No module of Herald imports a private python-telegram-bot module (telegram._*)."""
    found = {
        str(path.relative_to(BOT_DIR)): private
        for path in sorted(BOT_DIR.rglob("*.py"))
        if (private := _private_ptb_imports(path.read_text(encoding="utf-8")))
    }
    assert found == {}
