"""The web endpoint: email double opt-in, preferences, one-click unsubscribe, health, metrics."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from typing import Any, Protocol

from itsdangerous import SignatureExpired
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bot.health import Health
from bot.metrics import CONTENT_TYPE, Metrics
from bot.models import Channel, Status, Subscriber
from bot.outbox.topics import topic_offer
from bot.render.renderer import Renderer
from bot.settings import Settings, Site
from bot.store import Store
from bot.tokens import Purpose, TokenError, Tokens
from bot.web import preferences as prefs_form
from bot.web.guard import SecurityHeaders, breaks_headers, normalize_email
from bot.web.limits import SubscribeLimiter
from bot.web.server import bind, serve

__all__ = ["ConfirmationSender", "Refusal", "bind", "create_app", "serve"]

log = logging.getLogger(__name__)

_MAX_FIELD_BYTES = 16 * 1024
_MAX_FIELDS = 20
_MAX_PREFERENCE_FIELDS = 100  # a checkbox per topic on offer (and per topic chosen before)


class ConfirmationSender(Protocol):
    """The part of the Publisher the web app uses."""

    async def send_confirmation(self, subscriber: Subscriber, token_url: str) -> None:
        """Queue the double opt-in email carrying `token_url`."""


class Refusal(Exception):
    """A request answered with an error page: `status` and a `reason` the template words."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _Pages:
    """The request handlers; one instance per app holds its collaborators."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        tokens: Tokens,
        publisher: ConfirmationSender,
        metrics: Metrics,
        renderer: Renderer,
        limiter: SubscribeLimiter,
        clock: Callable[[], float],
        health: Health,
    ) -> None:
        self.settings = settings
        self.store = store
        self.tokens = tokens
        self.publisher = publisher
        self.metrics = metrics
        self.renderer = renderer
        self.limiter = limiter
        self.clock = clock
        self.health = health
        self.base = settings.public_base

    # --- helpers -------------------------------------------------------------------------

    def page(self, template: str, code: int = 200, **ctx: Any) -> HTMLResponse:
        html = self.renderer.text(f"web/{template}", home_url=f"{self.base}/", **ctx)
        return HTMLResponse(html, status_code=code)

    def link(self, purpose: Purpose, subscriber_id: int) -> str:
        return self.tokens.link(self.base, purpose, subscriber_id)

    async def subscriber(self, purpose: Purpose, request: Request) -> Subscriber:
        """The email subscriber a token in the path names, or a Refusal (400/404/410)."""
        token = str(request.path_params["token"])
        try:
            subscriber_id = self.tokens.read(purpose, token)
        except TokenError as exc:
            if isinstance(exc.__cause__, SignatureExpired):
                raise Refusal(410, "expired_link") from exc
            raise Refusal(400, "invalid_link") from exc
        found = await self.store.subscribers.get_by_id(subscriber_id)
        if found is None or found.channel is not Channel.EMAIL:
            raise Refusal(404, "unknown_subscriber")
        return found

    async def form(self, request: Request, max_fields: int = _MAX_FIELDS) -> FormData:
        form = await request.form(
            max_files=0, max_fields=max_fields, max_part_size=_MAX_FIELD_BYTES
        )
        for value in form.values():
            if not isinstance(value, str) or breaks_headers(value):
                raise Refusal(400, "bad_input")
        return form

    def client_ip(self, request: Request) -> str:
        """The limiter's key: the client's IPv4 address, or its IPv6 /64 (one household)."""
        host = request.client.host if request.client else "unknown"
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return host
        if ip.version == 6 and ip.ipv4_mapped is not None:
            # An IPv4 client on a dual-stack listener: its own key, not a shared /64.
            ip = ip.ipv4_mapped
        if ip.version == 6:
            return str(ipaddress.ip_network(f"{ip}/64", strict=False))
        return str(ip)

    # --- routes --------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        return self.page("subscribe.html", email="", breaking=True, daily=True, error=None)

    async def subscribe(self, request: Request) -> Response:
        now = self.clock()
        if not self.limiter.allow_ip(self.client_ip(request), now):
            self.metrics.web_subscribe.labels("limited").inc()
            raise Refusal(429, "too_many")
        form = await self.form(request)
        raw = str(form.get("email", ""))
        breaking, daily = "breaking" in form, "daily" in form
        address = normalize_email(raw)
        error = None
        if address is None:
            error = "invalid_email"
        elif not (breaking or daily):
            error = "choose_one"
        if address is None or error is not None:
            self.metrics.web_subscribe.labels("invalid").inc()
            return self.page(
                "subscribe.html", 400, email=raw, breaking=breaking, daily=daily, error=error
            )
        if self.limiter.allow_address(address, now):
            # New, pending or known: the same work and the same answer, so the page tells
            # nobody whether an address is on the list. Known subscribers keep their settings.
            subscriber = await self.store.subscribers.request_email(
                address, breaking=breaking, daily=daily
            )
            await self.publisher.send_confirmation(
                subscriber, self.link(Purpose.CONFIRM, subscriber.id)
            )
            self.metrics.web_subscribe.labels("accepted").inc()
        else:
            # Spare the mailbox a flood of confirmations; the asker still learns nothing.
            self.metrics.web_subscribe.labels("address_limited").inc()
        return self.page("check_inbox.html", email=address)

    # Link pages come in pairs (see `_link_route`): the `_page` half only shows, the other
    # changes state and only POST reaches it. Mail gateways fetch links, with GET or HEAD,
    # to scan them, and that must never confirm or unsubscribe anyone.

    async def confirm_page(self, request: Request) -> Response:
        subscriber = await self.subscriber(Purpose.CONFIRM, request)
        return self.page("confirm.html", subscriber=subscriber)

    async def confirm(self, request: Request) -> Response:
        subscriber = await self.subscriber(Purpose.CONFIRM, request)
        confirmed = await self.store.subscribers.confirm(subscriber.id)
        if confirmed is None or confirmed.status is not Status.ACTIVE:
            # The address left or bounced after this link was sent; it must ask afresh.
            raise Refusal(410, "stale_confirm")
        log.info("web: subscriber %d confirmed", subscriber.id)
        return self.page(
            "confirmed.html",
            subscriber=confirmed,
            preferences_url=self.link(Purpose.PREFERENCES, subscriber.id),
            unsubscribe_url=self.link(Purpose.UNSUBSCRIBE, subscriber.id),
        )

    async def preferences_page(self, request: Request) -> Response:
        subscriber = await self.subscriber(Purpose.PREFERENCES, request)
        offer = await topic_offer(self.renderer.site, self.store.posts)
        return self.preferences_shown(subscriber, prefs_form.shown(subscriber, offer))

    async def preferences(self, request: Request) -> Response:
        """Save the submitted choices, all of them or (a field is wrong) none."""
        subscriber = await self.subscriber(Purpose.PREFERENCES, request)
        form = await self.form(request, _MAX_PREFERENCE_FIELDS)
        offer = await topic_offer(self.renderer.site, self.store.posts)
        fields = {name: str(value) for name, value in form.multi_items() if name != "topic"}
        ticked = [str(v) for v in form.getlist("topic")]
        sent_back, picked, problems = prefs_form.read(fields, ticked, subscriber, offer)
        if picked is None:
            return self.preferences_shown(subscriber, sent_back, problems=problems, code=400)
        subs = self.store.subscribers
        await subs.set_prefs(
            subscriber.id,
            breaking=picked.breaking,
            daily=picked.daily,
            every_post=picked.every_post,
        )
        await subs.set_topics(subscriber.id, picked.topics)
        await subs.set_digest_time(subscriber.id, picked.digest_at)
        await subs.set_timezone(subscriber.id, picked.tz)
        saved = await self.subscriber(Purpose.PREFERENCES, request)
        return self.preferences_shown(saved, prefs_form.shown(saved, offer), saved=True)

    def preferences_shown(
        self,
        subscriber: Subscriber,
        form: prefs_form.PrefsForm,
        *,
        saved: bool = False,
        problems: tuple[str, ...] = (),
        code: int = 200,
    ) -> HTMLResponse:
        return self.page(
            "preferences.html",
            code,
            subscriber=subscriber,
            form=form,
            saved=saved,
            problems=problems,
            site_digest_time=self.settings.digest_time,
            site_zone=self.renderer.site.tz.key,
            zones=prefs_form.COMMON_ZONES,
            active=subscriber.status is Status.ACTIVE,
            unsubscribe_url=self.link(Purpose.UNSUBSCRIBE, subscriber.id),
        )

    async def unsubscribe_page(self, request: Request) -> Response:
        subscriber = await self.subscriber(Purpose.UNSUBSCRIBE, request)
        return self.page("unsubscribe.html", subscriber=subscriber)

    async def unsubscribe(self, request: Request) -> Response:
        subscriber = await self.subscriber(Purpose.UNSUBSCRIBE, request)
        # RFC 8058 one-click: the body (`List-Unsubscribe=One-Click`) needs no reading, no
        # cookie or second step is asked, and the answer is the page itself, not a redirect.
        if subscriber.status in (Status.ACTIVE, Status.PENDING):
            await self.store.subscribers.set_status(subscriber.id, Status.UNSUBSCRIBED)
            log.info("web: subscriber %d unsubscribed", subscriber.id)
        return self.page(
            "unsubscribed.html",
            subscriber=subscriber,
            preferences_url=self.link(Purpose.PREFERENCES, subscriber.id),
        )

    async def healthz(self, request: Request) -> Response:
        # Each check has its time limit: this answers in about that long even when one hangs.
        parts = await self.health.report()
        down = [p for p in parts if not p.up]
        text = self.renderer.text("web/healthz.txt", parts=parts, down=down)
        return PlainTextResponse(text + "\n", status_code=503 if down else 200)

    async def metrics_text(self, request: Request) -> Response:
        parts = await self.health.report()
        self.metrics.set_up({p.part: p.up for p in parts})
        # A locked database must not hold up the scrape: the counts then stay as last read.
        with suppress(TimeoutError):
            async with asyncio.timeout(self.health.timeout_s):
                self.metrics.set_subscribers(await self.store.subscribers.counts())
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)

    # --- errors --------------------------------------------------------------------------

    async def refused(self, request: Request, exc: Exception) -> Response:
        if isinstance(exc, Refusal):
            status, reason = exc.status, exc.reason
        elif isinstance(exc, HTTPException):
            status, reason = exc.status_code, "http"
        else:
            status, reason = 400, "bad_input"
        template = f"{status}.html" if status in (400, 404, 410, 429) else "error.html"
        response = self.page(template, status, status=status, reason=reason)
        if status == 429:
            response.headers["retry-after"] = str(int(self.limiter.limits.per_ip_window_s))
        return response

    async def left(self, request: Request, exc: Exception) -> Response:
        # The client went away, or was cut off for sending its body too slowly: nobody is
        # there to read an answer, and nothing to log.
        return Response(status_code=400)

    async def crashed(self, request: Request, exc: Exception) -> Response:
        # The route's pattern, not the path: paths carry tokens, which must stay out of logs.
        route = getattr(request.scope.get("route"), "path", "?")
        log.error("web: %s %s failed", request.method, route, exc_info=exc)
        try:
            return self.page("error.html", 500, status=500, reason="server")
        except Exception:  # the templates themselves may be what broke
            return PlainTextResponse("Internal Server Error", status_code=500)


_Endpoint = Callable[[Request], Awaitable[Response]]


def _link_route(path: str, show: _Endpoint, act: _Endpoint) -> Route:
    """A link page: POST runs `act`; GET, and the HEAD Starlette answers with it, `show`."""

    async def endpoint(request: Request) -> Response:
        return await (act if request.method == "POST" else show)(request)

    return Route(path, endpoint, methods=["GET", "POST"])


def create_app(
    *,
    settings: Settings,
    site: Site,
    store: Store,
    tokens: Tokens,
    publisher: ConfirmationSender,
    metrics: Metrics,
    renderer: Renderer | None = None,
    limiter: SubscribeLimiter | None = None,
    clock: Callable[[], float] = time.monotonic,
    health: Health | None = None,
    hooks: Sequence[BaseRoute] = (),
) -> Starlette:
    """The Starlette app of the SPEC's routes; pass the app's one Renderer when there is one.

    `/healthz` and `herald_up` report the parts registered in `health` (none: always ok);
    `hooks` are more routes (the git push webhook, from `bot.web.hooks`).
    """
    pages = _Pages(
        settings=settings,
        store=store,
        tokens=tokens,
        publisher=publisher,
        metrics=metrics,
        renderer=renderer or Renderer(site, public_url=settings.public_base),
        limiter=limiter or SubscribeLimiter(),
        clock=clock,
        health=health or Health(),
    )
    routes = [
        Route("/", pages.home, methods=["GET"]),
        Route("/subscribe", pages.subscribe, methods=["POST"]),
        _link_route("/confirm/{token}", pages.confirm_page, pages.confirm),
        _link_route("/preferences/{token}", pages.preferences_page, pages.preferences),
        _link_route("/unsubscribe/{token}", pages.unsubscribe_page, pages.unsubscribe),
        Route("/healthz", pages.healthz, methods=["GET"]),
        Route("/metrics", pages.metrics_text, methods=["GET"]),
        *hooks,
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={
            Refusal: pages.refused,
            HTTPException: pages.refused,
            UnicodeDecodeError: pages.refused,
            ClientDisconnect: pages.left,
            500: pages.crashed,
        },
    )
