"""The worker's keys, from its settings: one master secret, one derived key per purpose.

Derivation and the weak-key rules live in :mod:`watchfloor.core.keys`; this module finds
the master secret:

1. ``WATCHFLOOR_MASTER_KEY`` (or ``WATCHFLOOR_MASTER_KEY_FILE``);
2. else ``WATCHFLOOR_PSEUDONYM_KEY[_FILE]``, the variable's former name (deployments that
   set it keep working; its value is now the master secret, not the pseudonym key);
3. else ``master.key`` in the state dir, generated once (mode 0600) — fine for one
   worker on one machine, not for a group: workers of one group must share the secret.
   A ``pseudonym.key`` left by an earlier version is used if ``master.key`` is absent.

A configured secret that is weak (short, low-entropy, an example value from ``deploy/``)
stops the worker at start with :class:`~watchfloor.core.keys.WeakKeyError`.

>>> import secrets
>>> from watchfloor.settings import Settings
>>> master = secrets.token_hex(32)
>>> keys = load_keys(Settings(master_key=master))
>>> keys == load_keys(Settings(pseudonym_key=master)) and keys.checkpoint != master.encode()
True
>>> load_keys(Settings(master_key="change-me-to-64-hex-characters"))
Traceback (most recent call last):
...
watchfloor.core.keys.WeakKeyError: WATCHFLOOR_MASTER_KEY is the example value shipped with \
watchfloor; generate one with: python -c 'import secrets; print(secrets.token_hex(32))'
"""

from __future__ import annotations

import os
import secrets

from watchfloor.core.keys import Keys, WeakKeyError, check_master, derive_keys
from watchfloor.settings import Settings

__all__ = ["Keys", "WeakKeyError", "load_keys", "master_secret"]


def master_secret(settings: Settings) -> bytes:
    """The master secret (see the module doc); raises WeakKeyError if it is weak."""
    if settings.master_key:
        return check_master(settings.master_key, "WATCHFLOOR_MASTER_KEY")
    if settings.pseudonym_key:
        return check_master(settings.pseudonym_key, "WATCHFLOOR_PSEUDONYM_KEY")
    path = settings.state_dir / "master.key"
    legacy = settings.state_dir / "pseudonym.key"
    if not path.exists() and legacy.exists():
        path = legacy
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another worker on this machine made it first: use theirs
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32) + "\n")
    return check_master(path.read_text().strip(), f"the key file {path}")


def load_keys(settings: Settings) -> Keys:
    """The per-purpose keys of the worker's master secret."""
    return derive_keys(master_secret(settings))
