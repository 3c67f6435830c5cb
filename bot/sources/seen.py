"""The post log as the sources see it: what they record, hold and mark announced."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

from bot.models import Post


class SeenPosts(Protocol):
    """What a source needs of the post log (the store's `PostLog` is one)."""

    async def record(
        self,
        posts: Sequence[Post],
        *,
        announced: bool,
        now: datetime,
        versions: Mapping[str, str] | None = None,
        moved: Mapping[str, str] | None = None,
    ) -> list[tuple[int, Post]]: ...
    async def mark_announced(self, post_id: int) -> None: ...
    async def pending(self) -> list[tuple[int, Post]]: ...
    async def file_versions(self) -> dict[str, str]: ...
    async def get_meta(self, key: str) -> str | None: ...
    async def set_meta(self, key: str, value: str) -> None: ...


def utc_now() -> datetime:
    return datetime.now(UTC)
