"""A real HTTP server on 127.0.0.1 that serves what a test sets: feeds, post pages, faults.

Answers conditional GETs (`If-None-Match`, `If-Modified-Since`) with 304, can refuse HEAD,
answer a queue of statuses before the page itself, or cut a body off; records every request.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Page:
    body: bytes
    content_type: str = "application/atom+xml; charset=utf-8"
    etag: str | None = None
    last_modified: str | None = None
    head_status: int | None = None  # e.g. 405: HEAD refused
    statuses: list[int] = field(default_factory=list)  # answered first, one per request
    cut_at: int | None = None  # send this many bytes of the body, then hang up


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    status: int


class SiteServer:
    """Use as `async with SiteServer() as site:`; `site.url(path)` is a page's address."""

    def __init__(self) -> None:
        self.pages: dict[str, Page] = {}
        self.requests: list[Seen] = []
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()

    async def __aenter__(self) -> SiteServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def url(self, path: str) -> str:
        return self.base_url + path

    def serve(
        self,
        path: str,
        body: bytes | str,
        *,
        content_type: str = "application/atom+xml; charset=utf-8",
        etag: bool = True,
        last_modified: str | None = None,
        head_status: int | None = None,
        statuses: list[int] | None = None,
        cut_at: int | None = None,
    ) -> Page:
        """Serve `body` at `path` from now on (with an ETag of its content unless `etag=False`)."""
        data = body.encode() if isinstance(body, str) else body
        tag = f'"{hashlib.sha1(data).hexdigest()[:16]}"' if etag else None
        page = Page(
            data, content_type, tag, last_modified, head_status, list(statuses or []), cut_at
        )
        self.pages[path] = page
        return page

    def seen(self, path: str, method: str | None = None) -> list[Seen]:
        return [r for r in self.requests if r.path == path and method in (None, r.method)]

    async def wait_for_requests(self, path: str, count: int, timeout_s: float = 10.0) -> None:
        """Wait until `path` was asked for `count` times in all."""
        async with asyncio.timeout(timeout_s):
            while len(self.seen(path)) < count:
                changed = self._changed
                await changed.wait()

    def _note(self, request: web.Request, status: int) -> None:
        self.requests.append(Seen(request.method, request.path, dict(request.headers), status))
        self._changed.set()
        self._changed = asyncio.Event()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        page = self.pages.get(request.path)
        if page is None:
            self._note(request, 404)
            return web.Response(status=404, text="not found")
        if page.statuses:
            status = page.statuses.pop(0)
            self._note(request, status)
            return web.Response(status=status, text=f"status {status}")
        if request.method == "HEAD" and page.head_status is not None:
            self._note(request, page.head_status)
            return web.Response(status=page.head_status)
        unchanged = (
            page.etag is not None and request.headers.get("If-None-Match") == page.etag
        ) or (
            page.last_modified is not None
            and request.headers.get("If-Modified-Since") == page.last_modified
        )
        headers = {"Content-Type": page.content_type}
        if page.etag:
            headers["ETag"] = page.etag
        if page.last_modified:
            headers["Last-Modified"] = page.last_modified
        if unchanged:
            self._note(request, 304)
            return web.Response(status=304, headers=headers)
        self._note(request, 200)
        if page.cut_at is None:
            return web.Response(body=page.body, headers=headers)
        response = web.StreamResponse(headers=headers)
        response.content_length = len(page.body)
        await response.prepare(request)
        await response.write(page.body[: page.cut_at])
        assert request.transport is not None
        request.transport.close()  # hang up before the promised length
        return response
