"""Bearer tokens for the agencies' web access (TAXII, console).

``watchfloor taxii token AGENCY`` issues a token: it is printed once and only its
SHA-256 is stored (``<state dir>/agency-tokens.json``, mode 0600), so a copy of the state
dir does not hand out access. A request's token is hashed and looked up; the agency it
belongs to is what the server believes, never anything the request says about itself.

>>> import tempfile, pathlib
>>> store = TokenStore(pathlib.Path(tempfile.mkdtemp()) / "t.json")
>>> token = store.issue("cert")
>>> store.agency(token), store.agency("guess"), store.agency(None)
('cert', None, None)
>>> token in store.path.read_text()
False
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
from pathlib import Path

TOKEN_BYTES = 32


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class TokenStore:
    """Hashed bearer tokens by agency, in one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._by_hash: dict[str, str] = {}
        self._mtime = -1.0
        self._reload()

    def _reload(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._by_hash, self._mtime = {}, -1.0
            return
        if mtime == self._mtime:
            return
        data = json.loads(self.path.read_text() or "{}")
        self._by_hash = {h: a for h, a in data.get("tokens", {}).items() if isinstance(a, str)}
        self._mtime = mtime

    def issue(self, agency: str) -> str:
        """A new token for ``agency`` (returned once; only its hash is kept)."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        with self._lock:
            self._reload()
            self._by_hash[_digest(token)] = agency
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump({"tokens": self._by_hash}, out, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
            self._mtime = self.path.stat().st_mtime
        return token

    def revoke(self, agency: str) -> int:
        """Remove every token of ``agency``; return how many there were."""
        with self._lock:
            self._reload()
            gone = [h for h, a in self._by_hash.items() if a == agency]
            for h in gone:
                del self._by_hash[h]
            self.path.write_text(json.dumps({"tokens": self._by_hash}, indent=1, sort_keys=True))
            self._mtime = self.path.stat().st_mtime
        return len(gone)

    def agency(self, token: str | None) -> str | None:
        """The agency a token was issued to, or None."""
        if not token or len(token) > 256:
            return None
        with self._lock:
            self._reload()  # tokens issued while the server runs take effect at once
            return self._by_hash.get(_digest(token))


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header.

    >>> bearer("Bearer abc"), bearer("bearer  abc "), bearer("Basic abc"), bearer(None)
    ('abc', 'abc', None, None)
    """
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
