"""The web endpoint over HTTP: double opt-in, preferences, one-click unsubscribe, errors, limits."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from bot.errors import ConfigError
from bot.metrics import Metrics
from bot.models import Channel, Status
from bot.settings import Settings
from bot.sources.jekyll.site import load_site
from bot.store import Store, open_store
from bot.tokens import Purpose, Tokens
from bot.web.guard import breaks_headers, normalize_email
from bot.web.limits import Limits, SlidingWindow, SubscribeLimiter
from bot.web.routes import bind, create_app, serve
from tests.support.web import (
    SECRET,
    FakeClock,
    RecordingPublisher,
    expired_token,
    path_of,
    visible_text,
    web_settings,
)
from tests.web.serving import served

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@dataclass
class Web:
    app: Starlette
    store: Store
    publisher: RecordingPublisher
    tokens: Tokens
    clock: FakeClock
    metrics: Metrics
    client: httpx.AsyncClient

    def client_from(self, ip: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(ip, 4242))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[Web]:
    settings = web_settings(tmp_path)
    clock = FakeClock()
    async with open_store(settings.database_path) as store:
        publisher = RecordingPublisher()
        tokens = Tokens(SECRET)
        metrics = Metrics()
        app = create_app(
            settings=settings,
            site=load_site(settings),
            store=store,
            tokens=tokens,
            publisher=publisher,
            metrics=metrics,
            limiter=SubscribeLimiter(Limits(per_ip=5, per_address=3)),
            clock=clock,
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Web(app, store, publisher, tokens, clock, metrics, client)


async def subscribe(client: httpx.AsyncClient, address: str, **fields: str) -> httpx.Response:
    data = {"email": address, "breaking": "on", "daily": "on"} | fields
    return await client.post("/subscribe", data=data)


def test_header_breaking_characters_are_recognised() -> None:
    """CR, LF, NUL, other controls and Unicode line breaks count as header-breaking."""
    for bad in ("a\rb", "a\nb", "a\x00b", "a\tb", "a\x1bb", "a\x85b", "a\u2028b"):
        assert breaks_headers(bad), repr(bad)
    assert not breaks_headers("reader+news@example.com")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Reader@Example.COM", "Reader@example.com"),
        ("  reader@example.com ", "reader@example.com"),
        ("a@bücher.de", "a@xn--bcher-kva.de"),
        ("not-an-address", None),
        ("a@localhost", None),
        ("x@example.com\r\nBcc: victim@example.org", None),
        ("Name <x@example.com>", None),
        ("a" * 400 + "@example.com", None),
    ],
)
def test_addresses_are_validated_and_normalised(raw: str, expected: str | None) -> None:
    """Addresses are checked by a real validator (no DNS) and stored in one ASCII form."""
    assert normalize_email(raw) == expected


def test_sliding_window_counts_per_key_and_forgets_old_hits() -> None:
    """A key gets `limit` hits per window, other keys are independent, and time frees it."""
    window = SlidingWindow(2, 60.0)
    assert [window.hit("a", t) for t in (0.0, 1.0, 2.0)] == [True, True, False]
    assert window.hit("b", 2.0)
    assert not window.hit("a", 59.0)
    assert window.hit("a", 60.5)


def test_sliding_window_memory_stays_bounded() -> None:
    """A flood of distinct keys never grows the table past its cap."""
    window = SlidingWindow(1, 60.0, max_keys=100)
    for i in range(1000):
        window.hit(f"ip{i}", float(i) / 1000)
    assert len(window) <= 100


async def test_form_is_a_phone_friendly_page_without_javascript(web: Web) -> None:
    """`GET /` shows the site's name and a form with email, breaking and daily, no scripts."""
    response = await web.client.get("/")
    assert response.status_code == 200
    html = response.text
    assert "The Daily Herald" in html
    assert 'name="viewport"' in html
    for field_name in ('name="email"', 'name="breaking"', 'name="daily"'):
        assert field_name in html
    assert "<script" not in html.lower()
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_subscribe_starts_double_opt_in(web: Web) -> None:
    """A new address becomes pending and gets a signed confirmation link, nothing more."""
    response = await subscribe(web.client, "reader@example.com", daily="")
    assert response.status_code == 200
    assert "Check your inbox" in response.text
    found = await web.store.subscribers.get(Channel.EMAIL, "reader@example.com")
    assert found is not None and found.status is Status.PENDING
    (subscriber, url), *_ = web.publisher.confirmations
    assert subscriber.id == found.id
    assert url.startswith("http://testserver/confirm/")
    assert str(found.id) != url.rsplit("/", 1)[1]
    assert web.tokens.read(Purpose.CONFIRM, url.rsplit("/", 1)[1]) == found.id


async def test_same_answer_for_new_pending_known_and_unknown(web: Web) -> None:
    """The answer does not reveal whether an address is new, pending or already subscribed."""
    known = "known@example.com"
    await web.store.subscribers.upsert(Channel.EMAIL, known, breaking=False, daily=True)
    answers = []
    for ip, address in (("10.0.0.1", "new@example.com"), ("10.0.0.2", "new@example.com")):
        async with web.client_from(ip) as client:
            answers.append((await subscribe(client, address), address))
    async with web.client_from("10.0.0.3") as client:
        answers.append((await subscribe(client, known), known))
    texts = {visible_text(r.text).replace(a, "ADDRESS") for r, a in answers}
    assert {r.status_code for r, _ in answers} == {200}
    assert len(texts) == 1
    # The same work happened for each: one confirmation per request.
    assert [s.address for s, _ in web.publisher.confirmations] == [
        "new@example.com",
        "new@example.com",
        known,
    ]
    still = await web.store.subscribers.get(Channel.EMAIL, known)
    assert still is not None and still.status is Status.ACTIVE and not still.breaking


async def test_confirm_link_get_shows_button_and_only_post_confirms(web: Web) -> None:
    """A link scanner's GET does not subscribe anyone; pressing Confirm (POST) does."""
    await subscribe(web.client, "reader@example.com")
    (subscriber, url), *_ = web.publisher.confirmations
    page = await web.client.get(path_of(url))
    assert page.status_code == 200
    assert "<button" in page.text and 'method="post"' in page.text
    for _ in range(3):
        await web.client.get(path_of(url))
    still = await web.store.subscribers.get_by_id(subscriber.id)
    assert still is not None and still.status is Status.PENDING
    done = await web.client.post(path_of(url))
    assert done.status_code == 200
    assert "subscribed" in done.text
    active = await web.store.subscribers.get_by_id(subscriber.id)
    assert active is not None and active.status is Status.ACTIVE


@pytest.mark.parametrize("route", ["confirm", "preferences", "unsubscribe"])
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_forged_and_tampered_tokens_get_a_400_page(web: Web, route: str, method: str) -> None:
    """Forged, tampered or raw-id tokens get a friendly 4xx page, never a 500 or traceback."""
    sub = await web.store.subscribers.upsert(Channel.EMAIL, "victim@example.com")
    good = web.tokens.make(Purpose(route), sub.id)
    forged = Tokens("another-secret").make(Purpose(route), sub.id)
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    for token in (forged, tampered, str(sub.id), "x" * 300, "%00%0d%0a"):
        response = await web.client.request(method, f"/{route}/{token}")
        assert response.status_code == 400, token
        assert "not valid" in response.text
        assert "Traceback" not in response.text
    after = await web.store.subscribers.get_by_id(sub.id)
    assert after == sub


async def test_token_for_another_purpose_is_refused(web: Web) -> None:
    """A preferences token cannot be used to unsubscribe or confirm someone."""
    sub = await web.store.subscribers.upsert(Channel.EMAIL, "victim@example.com")
    token = web.tokens.make(Purpose.PREFERENCES, sub.id)
    assert (await web.client.post(f"/unsubscribe/{token}", data=ONE_CLICK)).status_code == 400
    assert (await web.client.post(f"/confirm/{token}")).status_code == 400
    after = await web.store.subscribers.get_by_id(sub.id)
    assert after is not None and after.status is Status.ACTIVE


async def test_expired_confirm_link_gets_a_410_page(web: Web) -> None:
    """A confirmation link older than a week is gone (410) and says how to get a new one."""
    await subscribe(web.client, "late@example.com")
    (subscriber, _), *_ = web.publisher.confirmations
    token = expired_token("confirm", subscriber.id, age_s=8 * 24 * 3600)
    for method in ("GET", "POST"):
        response = await web.client.request(method, f"/confirm/{token}")
        assert response.status_code == 410
        assert "expired" in response.text
    still = await web.store.subscribers.get_by_id(subscriber.id)
    assert still is not None and still.status is Status.PENDING


async def test_valid_token_for_deleted_subscriber_gets_404(web: Web) -> None:
    """A correctly signed link for a subscriber that no longer exists is a 404 page."""
    token = web.tokens.make(Purpose.PREFERENCES, 999_999)
    response = await web.client.get(f"/preferences/{token}")
    assert response.status_code == 404
    assert "no longer exists" in response.text


@pytest.mark.parametrize(
    "email",
    [
        "x@example.com\r\nBcc: victim@example.org",
        "x@example.com\nSubject: spam",
        "x@example.com\x00",
        "x@example.com\u2028Bcc: v@example.org",
    ],
)
async def test_header_injection_is_refused_with_a_400_page(web: Web, email: str) -> None:
    """An email field with CR/LF/NUL or line separators is refused; nothing stored or sent."""
    response = await subscribe(web.client, email)
    assert response.status_code == 400
    assert "cannot be part of an email address" in response.text
    assert web.publisher.confirmations == []
    counts = await web.store.subscribers.counts()
    assert counts == {}


async def test_invalid_address_shows_the_form_again(web: Web) -> None:
    """A mistyped address gets the form back with a message and the typed text, escaped."""
    response = await subscribe(web.client, "<b>not@valid")
    assert response.status_code == 400
    assert "does not look like an email address" in response.text
    assert "&lt;b&gt;not@valid" in response.text
    assert "<b>not@valid" not in response.text
    assert web.publisher.confirmations == []


async def test_subscribe_needs_at_least_one_kind(web: Web) -> None:
    """Unticking both breaking and daily asks the reader to choose one; nothing is sent."""
    response = await web.client.post("/subscribe", data={"email": "a@example.com"})
    assert response.status_code == 400
    assert "choose at least one" in response.text
    assert web.publisher.confirmations == []


async def test_per_ip_limit_answers_429_until_time_passes(web: Web) -> None:
    """One IP gets 5 sign-ups per window, then a 429 page, and may try again later."""
    answers = [(await subscribe(web.client, f"u{i}@example.com")).status_code for i in range(7)]
    assert answers == [200] * 5 + [429] * 2
    limited = await subscribe(web.client, "u9@example.com")
    assert "Too many requests" in limited.text
    assert int(limited.headers["retry-after"]) > 0
    assert len(web.publisher.confirmations) == 5
    async with web.client_from("192.0.2.7") as other:
        assert (await subscribe(other, "other@example.com")).status_code == 200
    web.clock.now += 601
    assert (await subscribe(web.client, "u9@example.com")).status_code == 200


async def test_ipv6_clients_are_limited_per_64(web: Web) -> None:
    """Addresses of one IPv6 /64 share a limit, so rotating the host part does not help."""
    codes = []
    for i in range(7):
        async with web.client_from(f"2001:db8:1:2::{i + 1:x}") as client:
            codes.append((await subscribe(client, f"v{i}@example.com")).status_code)
    assert codes == [200] * 5 + [429] * 2
    async with web.client_from("2001:db8:1:3::1") as client:
        assert (await subscribe(client, "other@example.com")).status_code == 200


async def test_per_address_limit_stops_mail_but_not_the_answer(web: Web) -> None:
    """Asking for one address from many IPs sends at most 3 confirmations; answers stay alike."""
    texts = set()
    for i in range(6):
        async with web.client_from(f"198.51.100.{i}") as client:
            response = await subscribe(client, "target@example.com")
        assert response.status_code == 200
        texts.add(response.text)
    assert len(texts) == 1
    assert len(web.publisher.confirmations) == 3


async def test_preferences_page_shows_and_saves_choices(web: Web) -> None:
    """The preferences link shows the current choices as checkboxes and saves new ones."""
    sub = await web.store.subscribers.upsert(Channel.EMAIL, "p@example.com", daily=False)
    path = f"/preferences/{web.tokens.make(Purpose.PREFERENCES, sub.id)}"
    page = await web.client.get(path)
    assert page.status_code == 200
    assert 'name="breaking" value="on" checked' in page.text
    assert 'name="daily" value="on">' in page.text
    saved = await web.client.post(path, data={"daily": "on", "every_post": "on"})
    assert saved.status_code == 200 and "Saved" in saved.text
    after = await web.store.subscribers.get_by_id(sub.id)
    assert after is not None
    assert (after.breaking, after.daily, after.every_post) == (False, True, True)


async def test_unsubscribe_page_has_a_button_and_get_changes_nothing(web: Web) -> None:
    """Opening the unsubscribe link shows a button; only pressing it (POST) unsubscribes."""
    sub = await web.store.subscribers.upsert(Channel.EMAIL, "u@example.com")
    path = f"/unsubscribe/{web.tokens.make(Purpose.UNSUBSCRIBE, sub.id)}"
    page = await web.client.get(path)
    assert page.status_code == 200 and "<button" in page.text
    after = await web.store.subscribers.get_by_id(sub.id)
    assert after is not None and after.status is Status.ACTIVE


@pytest.mark.parametrize("multipart", [False, True])
async def test_one_click_unsubscribe_is_immediate_and_needs_nothing_else(
    web: Web, multipart: bool
) -> None:
    """RFC 8058: a bare POST (no cookie, no CSRF, form or multipart body) unsubscribes at once."""
    sub = await web.store.subscribers.upsert(Channel.EMAIL, "u@example.com")
    path = f"/unsubscribe/{web.tokens.make(Purpose.UNSUBSCRIBE, sub.id)}"
    if multipart:
        response = await web.client.post(path, files={"List-Unsubscribe": (None, "One-Click")})
    else:
        response = await web.client.post(path, data=ONE_CLICK)
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert "unsubscribed" in response.text
    after = await web.store.subscribers.get_by_id(sub.id)
    assert after is not None and after.status is Status.UNSUBSCRIBED
    again = await web.client.post(path, data=ONE_CLICK)
    assert again.status_code == 200


async def test_old_confirm_link_does_not_resubscribe_someone_who_left(web: Web) -> None:
    """After unsubscribing, an old confirmation link cannot switch the address back on."""
    await subscribe(web.client, "gone@example.com")
    (subscriber, url), *_ = web.publisher.confirmations
    await web.client.post(path_of(url))
    unsubscribe = f"/unsubscribe/{web.tokens.make(Purpose.UNSUBSCRIBE, subscriber.id)}"
    await web.client.post(unsubscribe, data=ONE_CLICK)
    response = await web.client.post(path_of(url))
    assert response.status_code == 410
    after = await web.store.subscribers.get_by_id(subscriber.id)
    assert after is not None and after.status is Status.UNSUBSCRIBED


async def test_unknown_routes_and_methods_get_html_pages(web: Web) -> None:
    """Unknown paths are a 404 page and wrong methods a 405 page, both in the site's layout."""
    missing = await web.client.get("/nope")
    assert missing.status_code == 404 and "The Daily Herald" in missing.text
    wrong = await web.client.get("/subscribe")
    assert wrong.status_code == 405 and "The Daily Herald" in wrong.text


async def test_healthz_and_metrics(web: Web) -> None:
    """`/healthz` says ok; `/metrics` is Prometheus text with subscribers by status."""
    assert (await web.client.get("/healthz")).text == "ok\n"
    await web.store.subscribers.upsert(Channel.EMAIL, "a@example.com")
    await web.store.subscribers.upsert(Channel.TELEGRAM, "42", status=Status.UNSUBSCRIBED)
    web.metrics.post_seen()
    web.metrics.job_queued("email", "breaking", 3)
    web.metrics.sent("telegram")
    web.metrics.failed("email", "transient")
    response = await web.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'herald_subscribers{channel="email",status="active"} 1.0' in text
    assert 'herald_subscribers{channel="telegram",status="unsubscribed"} 1.0' in text
    assert 'herald_subscribers{channel="email",status="pending"} 0.0' in text
    assert "herald_posts_seen_total 1.0" in text
    assert 'herald_jobs_total{channel="email",kind="breaking"} 3.0' in text
    assert 'herald_sends_total{channel="telegram"} 1.0' in text
    assert 'herald_send_failures_total{channel="email",reason="transient"} 1.0' in text


async def test_real_socket_on_port_0_serves_and_stops(tmp_path: Path) -> None:
    """uvicorn on an ephemeral port answers over TCP, leaves signals alone, stops on the event."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    settings = web_settings(tmp_path, public_url=f"http://127.0.0.1:{port}")
    stop, started = asyncio.Event(), asyncio.Event()
    async with open_store(settings.database_path) as store:
        sub = await store.subscribers.upsert(Channel.EMAIL, "tcp@example.com")
        tokens = Tokens(SECRET)
        app = create_app(
            settings=settings,
            site=load_site(settings),
            store=store,
            tokens=tokens,
            publisher=RecordingPublisher(),
            metrics=Metrics(),
        )
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        task = asyncio.create_task(serve(app, settings, stop, sock=listener, started=started))
        await asyncio.wait_for(started.wait(), 10)
        # `herald run` owns the signals: uvicorn must not have replaced its handlers.
        assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
        async with httpx.AsyncClient(base_url=settings.public_url) as client:
            assert (await client.get("/healthz")).text == "ok\n"
            url = f"/unsubscribe/{tokens.make(Purpose.UNSUBSCRIBE, sub.id)}"
            response = await client.post(url, data=ONE_CLICK)
            assert response.status_code == 200 and not response.is_redirect
        stop.set()
        await asyncio.wait_for(task, 10)
        after = await store.subscribers.get_by_id(sub.id)
        assert after is not None and after.status is Status.UNSUBSCRIBED


def test_busy_listen_address_is_a_config_error(tmp_path: Path) -> None:
    """A HERALD_WEB_LISTEN that is taken fails with a message naming the variable."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        settings = web_settings(tmp_path, web_listen=f"127.0.0.1:{port}")
        with pytest.raises(ConfigError, match="HERALD_WEB_LISTEN"):
            bind(settings).close()


class BrokenPublisher:
    """A publisher whose queue is down: every confirmation fails."""

    async def send_confirmation(self, subscriber: object, token_url: str) -> None:
        raise RuntimeError("outbox unavailable")


def broken_app(settings: Settings, store: Store) -> Starlette:
    """The web app with a publisher that always fails, as when the outbox is unavailable."""
    return create_app(
        settings=settings,
        site=load_site(settings),
        store=store,
        tokens=Tokens(SECRET),
        publisher=BrokenPublisher(),
        metrics=Metrics(),
    )


async def test_internal_failure_shows_a_plain_500_page(tmp_path: Path) -> None:
    """When something behind the page breaks, the reader sees a short page, no traceback."""
    settings = web_settings(tmp_path)
    async with open_store(settings.database_path) as store:
        app = broken_app(settings, store)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.post(
                "/subscribe", data={"email": "a@example.com", "daily": "1"}
            )
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.text
    assert "Traceback" not in response.text and "outbox unavailable" not in response.text


async def test_a_failing_token_page_logs_the_route_not_the_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 500 on a link page is logged by its route pattern; the reader's token stays out."""
    settings = web_settings(tmp_path)
    async with open_store(settings.database_path) as store:
        sub = await store.subscribers.request_email("a@example.com", breaking=True, daily=True)
        app = broken_app(settings, store)
    token = Tokens(SECRET).make(Purpose.CONFIRM, sub.id)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get(f"/confirm/{token}")  # the database is closed by now
    assert response.status_code == 500
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "bot.web.routes")
    assert "GET /confirm/{token} failed" in logged
    assert token not in caplog.text


async def test_oversized_form_is_refused(web: Web) -> None:
    """A form body far larger than any subscription needs is refused with a 4xx page."""
    response = await web.client.post("/subscribe", data={"email": "a@example.com" + "x" * 40_000})
    assert response.status_code == 400
    assert "not accepted" in response.text
    assert web.publisher.confirmations == []


@pytest.mark.parametrize("route", ["confirm", "unsubscribe", "preferences"])
async def test_head_and_get_never_change_a_subscriber(tmp_path: Path, route: str) -> None:
    """HEAD and GET on a link page leave the subscriber as it was; only POST acts."""
    async with served(tmp_path) as web:
        pending = await web.store.subscribers.request_email(
            "h@example.com", breaking=True, daily=False
        )
        path = f"/{route}/{web.tokens.make(Purpose(route), pending.id)}"
        async with httpx.AsyncClient(base_url=web.base_url) as client:
            for method in ("HEAD", "GET", "HEAD"):
                response = await client.request(method, path)
                assert response.status_code == 200, method
                assert await web.store.subscribers.get_by_id(pending.id) == pending, method
            posted = await client.post(path, data={"daily": "on"})
        assert posted.status_code == 200
        after = await web.store.subscribers.get_by_id(pending.id)
        assert after is not None and after != pending
