"""Keep the operator's last push in the store, sealed, and serve it after a restart
(issue 6 review).

In push mode the configuration used to live only in memory: a receiver restarted (node
drain, OOM) while the operator was down stayed not-ready until the operator came back,
and GitHub does not retry a delivery that met that outage. Now every push that compiled
is sealed (hookline.receiver.sealed: AES-256-GCM under a key derived from the admin
token) and saved; at start-up, before serving, the receiver opens and compiles it
exactly as a push, and serves it as source "stored" until the operator pushes again.

Without an admin token nothing is stored: there is no key, and the bundle's Secret
values must never be stored in the clear (DESIGN.md). A row that does not open (the
token was rotated, the data altered) leaves the receiver not-ready, as before.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging

from .admin_auth import AdminToken
from .bundle import compile_bundle
from .config import ReceiverConfig
from .sealed import Unsealable, seal, unseal
from .state import ReceiverState

log = logging.getLogger(__name__)

# How long a push's answer may wait for its save: the push has taken effect already, and
# a slow store must not hold the operator's PUT (and the next push, behind the config
# lock) for the store's own 30 s command timeout.
SAVE_TIMEOUT = 10.0


def _key_id(key: bytes) -> bytes:
    # What state.stored_as remembers of a key: a digest, not the key itself.
    return hashlib.sha256(key).digest()


async def save_pushed(
    state: ReceiverState, key: bytes | None, config: ReceiverConfig, body: bytes
) -> None:
    """Seal and save `body`, the push that compiled into `config`. Never raises: the
    push already took effect, and a store that cannot keep it must not undo that."""
    if key is None:
        return  # no admin token: said once at start-up (restore)
    stored_as = (config.version, _key_id(key))
    if state.stored_as == stored_as:
        return  # the operator repeated a push the store already holds, under this key
    try:
        async with asyncio.timeout(SAVE_TIMEOUT):
            # Sealing tens of MB (a thousand Webhooks with schemas) is CPU: off the loop.
            nonce, ciphertext = await asyncio.to_thread(seal, key, config.version, body)
            await state.store.save_config(config.version, nonce, ciphertext)
    except Exception as exc:  # any failure: logged, and the push stands
        log.error(
            "configuration %s is served but could not be stored (%s: %s); a restart "
            "before the next push waits for the operator",
            config.version,
            type(exc).__name__,
            exc,
        )
        return
    state.stored_as = stored_as


def _open_and_compile(
    key: bytes, version: str, nonce: bytes, ciphertext: bytes
) -> tuple[ReceiverConfig | None, list[str]]:
    body = unseal(key, version, nonce, ciphertext)
    try:
        payload = json.loads(body)
    except ValueError:
        return None, ["bundle: not JSON"]
    return compile_bundle(payload)


async def restore(state: ReceiverState, token: AdminToken) -> None:
    """Serve the stored push, if there is one that opens with this token's key and
    compiles; otherwise leave the receiver waiting for the operator. Never raises: a
    receiver that cannot read its store's copy is no worse off than before."""
    key = token.config_key()
    if key is None:
        log.info(
            "no --admin-token-file: pushed configurations are not stored (they hold "
            "secrets and are sealed under a key derived from the token), so after a "
            "restart this receiver waits for the operator's push"
        )
        return
    try:
        stored = await state.store.load_config()
        if stored is None:
            log.info("no stored configuration; waiting for the operator's push")
            return
        version, nonce, ciphertext = stored
        config, errors = await asyncio.to_thread(_open_and_compile, key, version, nonce, ciphertext)
    except Unsealable as exc:
        # The message names the version only: no key, no content.
        log.warning("%s; waiting for the operator's push", exc)
        return
    except Exception as exc:
        # Type only: the message of an unexpected error might quote what it read.
        log.warning(
            "the stored configuration could not be read (%s); waiting for the operator's push",
            type(exc).__name__,
        )
        return
    if config is None:
        log.warning(
            "stored configuration %s does not parse (%d errors, first: %s); waiting for "
            "the operator's push",
            version,
            len(errors),
            errors[0],
        )
        return
    async with state.config_lock:
        if state.configured.is_set():
            return  # the operator was quicker: its push is newer
        state.swap(config)
        state.source = "stored"
        state.stored_as = (version, _key_id(key))
    log.info(
        "serving the stored configuration %s until the operator pushes: %d routes, %d problems",
        config.version,
        len(config.routes),
        len(config.problems),
    )
