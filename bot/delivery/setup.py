"""Delivery set up from settings: which transports, how many workers, and their lifetimes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from zoneinfo import ZoneInfo

from bot.delivery.dkim import SignedMail, Signer, key_from_settings
from bot.delivery.loop import Delivery, DeliveryConfig
from bot.delivery.pacing import Pacer, is_paid
from bot.metrics import Metrics
from bot.settings import Settings, zone
from bot.store import Store, secret_for
from bot.tokens import Tokens
from bot.transports import MailTransport, TelegramTransport
from bot.transports.files import FilesMail, FilesTelegram


def workers_for(rate_per_s: float) -> int:
    """Concurrent Telegram sends: enough to keep the rate with ~0.25 s answers, within reason."""
    return max(8, min(128, int(rate_per_s / 4)))


@asynccontextmanager
async def open_delivery(
    store: Store,
    settings: Settings,
    *,
    bot: object | None = None,
    config: DeliveryConfig | None = None,
    metrics: Metrics | None = None,
    tokens: Tokens | None = None,
    site_tz: ZoneInfo | None = None,
) -> AsyncIterator[Delivery]:
    """A Delivery with the transports `settings` call for; `bot` is an initialised telegram.Bot.

    Without HERALD_TELEGRAM_TOKEN or HERALD_SMTP_URL the files transport stands in; without
    `tokens`, they are made from the secret key. With HERALD_DKIM_KEY_FILE every email is
    signed (a bad key is a ConfigError here, before anything is sent). `site_tz` (the
    site's zone, `Site.tz`) places the quiet hours of readers who chose no zone; without
    it, HERALD_TIMEZONE or UTC.
    """
    dkim_key = key_from_settings(settings)
    async with AsyncExitStack() as stack:
        telegram: TelegramTransport
        mail: MailTransport
        pacer: Pacer | None = None
        if settings.telegram_token is None:
            telegram = await stack.enter_async_context(
                FilesTelegram(settings.outbox_dir / "telegram")
            )
        else:
            from bot.transports.telegram import BotTransport, make_bot

            if bot is None:
                bot = await stack.enter_async_context(make_bot(settings))
            telegram = await stack.enter_async_context(
                BotTransport(bot, paid=is_paid(settings.telegram_rate))  # type: ignore[arg-type]
            )
            # With other processes on the database the rate is a budget they all share.
            pacer = Pacer(settings.telegram_rate, shared=store.cluster.shared)
        if settings.smtp_url is None:
            mail = await stack.enter_async_context(FilesMail(settings.outbox_dir / "email"))
        else:
            from bot.transports.smtp import SmtpPool, parse_smtp_url

            smtp = parse_smtp_url(settings.smtp_url.get_secret_value())
            mail = await stack.enter_async_context(SmtpPool(smtp))
        if dkim_key is not None:
            mail = await stack.enter_async_context(SignedMail(mail, Signer(dkim_key)))
        if config is None:
            mail_workers = 2 * smtp.pool_size if settings.smtp_url is not None else 4
            config = DeliveryConfig(
                telegram_workers=workers_for(settings.telegram_rate), mail_workers=mail_workers
            )
        yield Delivery(
            store,
            telegram=telegram,
            mail=mail,
            tokens=tokens or Tokens(await secret_for(settings, store)),
            mail_from=settings.mail_from,
            public_url=settings.public_base,
            pacer=pacer,
            config=config,
            metrics=metrics,
            # VERP only where a listener takes the reports; else bounces go to the From address.
            return_path_domain=settings.return_path_domain if settings.bounce_listen else None,
            book_sends=store.cluster.book_sends,
            site_tz=site_tz or zone(settings.timezone or "UTC"),
        )
