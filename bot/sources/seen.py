"""The post log as the sources see it: what they record, hold and mark announced."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

from bot.models import Post

log = logging.getLogger(__name__)

OnPost = Callable[[Post, int], Awaitable[object]]  # (post, its id in the posts table)


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
    async def withdraw(self, path: str, *, now: datetime) -> bool:
        """The announced post recorded from `path` is withdrawn; False when there is none."""
        ...


class ForwardingLog:
    """A post log that hands every call to `inner`: the base of wrappers that change one or
    two of them (`NoticingLog` here, the publish gate's `HoldingLog`)."""

    def __init__(self, inner: SeenPosts) -> None:
        self._inner = inner

    async def record(
        self,
        posts: Sequence[Post],
        *,
        announced: bool,
        now: datetime,
        versions: Mapping[str, str] | None = None,
        moved: Mapping[str, str] | None = None,
    ) -> list[tuple[int, Post]]:
        return await self._inner.record(
            posts, announced=announced, now=now, versions=versions, moved=moved
        )

    async def withdraw(self, path: str, *, now: datetime) -> bool:
        return await self._inner.withdraw(path, now=now)

    async def mark_announced(self, post_id: int) -> None:
        await self._inner.mark_announced(post_id)

    async def pending(self) -> list[tuple[int, Post]]:
        return await self._inner.pending()

    async def file_versions(self) -> dict[str, str]:
        return await self._inner.file_versions()

    async def get_meta(self, key: str) -> str | None:
        return await self._inner.get_meta(key)

    async def set_meta(self, key: str, value: str) -> None:
        await self._inner.set_meta(key, value)


class NoticingLog(ForwardingLog):
    """A post log that calls `after()` once a record or withdraw is written: the corrector
    looks at the revisions then (a recorded post may have been corrected)."""

    def __init__(self, inner: SeenPosts, after: Callable[[], object]) -> None:
        super().__init__(inner)
        self._after = after

    async def record(
        self,
        posts: Sequence[Post],
        *,
        announced: bool,
        now: datetime,
        versions: Mapping[str, str] | None = None,
        moved: Mapping[str, str] | None = None,
    ) -> list[tuple[int, Post]]:
        try:
            return await super().record(
                posts, announced=announced, now=now, versions=versions, moved=moved
            )
        finally:
            self._after()

    async def withdraw(self, path: str, *, now: datetime) -> bool:
        try:
            return await super().withdraw(path, now=now)
        finally:
            self._after()


def utc_now() -> datetime:
    return datetime.now(UTC)


async def announce(posts: SeenPosts, on_post: OnPost, post_id: int, post: Post) -> None:
    """Hand a new post on and mark it announced; a failure leaves it pending for next start.

    Its job key keeps a retry from sending twice; the source goes on either way.
    """
    log.info("new post %s: %r%s", post.path, post.title, " (breaking)" if post.breaking else "")
    try:
        await on_post(post, post_id)
        await posts.mark_announced(post_id)
    except Exception:
        log.exception("post %s could not be queued; will retry at next start", post.path)
