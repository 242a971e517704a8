"""``ledger feeds add NAME``: a feed's Redis user, allowed nothing but ``XADD`` to its inbox.

The command connects as the Redis administrator (``--admin-url`` or
``LEDGER_REDIS_ADMIN_URL``; on the embedded default the ``ledger-admin`` user of the running
Redis, :mod:`services.runtime.embedded`), creates the user ``feed-NAME`` with a generated
password (:func:`services.runtime.acl.add_feed_user`; ``ACL SAVE`` keeps it when the server
has an ACL file), registers the feed in ``<prefix>:feeds`` as the service (so a running inbox
reads the feed's stream within seconds, no restart), and prints the password once: it is
stored nowhere else in the clear. Running it again for the same feed gives it a new password.
Exit status 2 for a bad name, 1 when Redis refuses.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated

import typer

from services.cli.app import fail, main, out, redis_url_for, settings_or_exit
from services.errors import LedgerError, SettingsError
from services.runtime.acl import add_feed_user, feed_user
from services.runtime.embedded import admin_url
from services.settings import feed_name_problem
from services.store.connection import connect, describe
from services.store.keys import RESERVED_INBOX_NAMES, Keys

__all__ = ["feeds_add", "feeds_app"]

feeds_app = typer.Typer(
    help="Feeds of the Redis inbox: each its own Redis user.", no_args_is_help=True
)
main.add_typer(feeds_app, name="feeds")


@feeds_app.command("add")
def feeds_add(
    name: Annotated[str, typer.Argument(help="The feed's name, as its tokens name it.")],
    admin: Annotated[
        str | None,
        typer.Option(
            "--admin-url",
            envvar="LEDGER_REDIS_ADMIN_URL",
            help="The Redis administrator's URL (user ledger-admin); embedded: found.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Create NAME's Redis user (XADD to <prefix>:inbox:NAME only) and print its password."""
    settings = settings_or_exit()
    problem = feed_name_problem(name)
    if problem is None and name in RESERVED_INBOX_NAMES:
        problem = f"{name!r} names the inbox's own stream"
    if problem is not None:
        raise fail(SettingsError(f"NAME: {problem}"), 2)
    try:
        url = redis_url_for(settings)
    except LedgerError as exc:
        raise fail(exc, 1) from None
    admin = admin or (None if settings.redis_url else admin_url(settings.data_dir))
    if admin is None:
        missing = LedgerError("set LEDGER_REDIS_ADMIN_URL (or --admin-url) to the admin's URL")
        raise fail(missing, 1)
    password = secrets.token_urlsafe(24)
    try:
        saved = asyncio.run(_add(url, admin, settings.keys, name, password))
    except LedgerError as exc:
        raise fail(exc, 1) from None
    keys = settings.keys
    out.print(f"feed {name}: Redis user {feed_user(name)} may XADD to {keys.inbox_of(name)} only")
    out.print(f"password (shown once, stored nowhere in the clear): {password}", soft_wrap=True)
    out.print(f"connect as: redis://{feed_user(name)}:<password>@{describe(url)}/0", soft_wrap=True)
    if not saved:
        out.print("note: this Redis has no ACL file; add the user to it to survive a restart")


async def _add(url: str, admin: str, keys: Keys, name: str, password: str) -> bool:
    """Create the user as the administrator, then register the feed as the service."""
    admin_client, service = connect(admin), connect(url)
    try:
        saved = await add_feed_user(admin_client, keys, name, password)
        await service.sadd(keys.inbox_feeds, name)
        return saved
    finally:
        await admin_client.aclose()
        await service.aclose()
