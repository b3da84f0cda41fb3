"""How every Kafka client of watchfloor authenticates: one place, driven by Settings.

``client_kwargs(settings)`` gives the keyword arguments for aiokafka clients (and, with
the same names, kafka-python's admin client); ``broker_credentials(settings)`` gives the
Faust equivalent. With no username configured both return a PLAINTEXT setup, so nothing
changes for an unsecured broker.

Passwords are never put into messages, exceptions or reprs from here: callers get them
only inside the returned kwargs, which they hand straight to the client.

>>> from watchfloor.settings import Settings
>>> client_kwargs(Settings())
{'security_protocol': 'PLAINTEXT'}
>>> kw = client_kwargs(Settings(sasl_username="agency-cert", sasl_password="pw"))
>>> kw["security_protocol"], kw["sasl_mechanism"], kw["sasl_plain_username"]
('SASL_PLAINTEXT', 'SCRAM-SHA-512', 'agency-cert')
>>> "pw" in repr(broker_credentials(Settings(sasl_username="u", sasl_password="pw")))
False
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from watchfloor.settings import Settings

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


class SecurityConfigError(ValueError):
    """The security settings are inconsistent (the message never contains a secret)."""


def effective_protocol(settings: Settings) -> str:
    """``security_protocol``, upgraded to its SASL form when a username is configured
    (credentials must never be silently ignored)."""
    proto = settings.security_protocol.upper()
    if proto not in PROTOCOLS:
        raise SecurityConfigError(
            f"WATCHFLOOR_SECURITY_PROTOCOL={settings.security_protocol!r}; "
            f"valid: {', '.join(PROTOCOLS)}"
        )
    if settings.sasl_username and not proto.startswith("SASL_"):
        proto = "SASL_SSL" if proto == "SSL" else "SASL_PLAINTEXT"
    # A CA file means the brokers speak TLS: never send credentials in the clear then.
    if settings.ssl_cafile and not proto.endswith("SSL"):
        proto = "SASL_SSL" if proto.startswith("SASL_") else "SSL"
    if proto.startswith("SASL_"):
        if not settings.sasl_username or not settings.sasl_password:
            raise SecurityConfigError(
                f"security protocol {proto} needs WATCHFLOOR_SASL_USERNAME and "
                "WATCHFLOOR_SASL_PASSWORD (or WATCHFLOOR_SASL_PASSWORD_FILE)"
            )
        if settings.sasl_mechanism.upper() not in MECHANISMS:
            raise SecurityConfigError(
                f"WATCHFLOOR_SASL_MECHANISM={settings.sasl_mechanism!r}; "
                f"valid: {', '.join(MECHANISMS)}"
            )
    return proto


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    """Verifies the broker's certificate and host name: against ``WATCHFLOOR_SSL_CAFILE``
    (e.g. the local broker's ``tls/ca.pem``) when set, else the system trust store."""
    cafile = settings.ssl_cafile or None
    if cafile is not None and not Path(cafile).is_file():
        raise SecurityConfigError(f"WATCHFLOOR_SSL_CAFILE={cafile}: no such file")
    return ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH, cafile=cafile)


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``AIOKafkaProducer``/``AIOKafkaConsumer``/
    ``AIOKafkaAdminClient`` (kafka-python's ``KafkaAdminClient`` takes the same names,
    except ``ssl_context``)."""
    proto = effective_protocol(settings)
    kwargs: dict[str, Any] = {"security_protocol": proto}
    if proto.startswith("SASL_"):
        kwargs.update(
            sasl_mechanism=settings.sasl_mechanism.upper(),
            sasl_plain_username=settings.sasl_username,
            sasl_plain_password=settings.sasl_password,
        )
    if proto.endswith("SSL"):
        kwargs["ssl_context"] = _ssl_context(settings)
    return kwargs


def broker_credentials(settings: Settings) -> Any:
    """Faust's ``broker_credentials`` (None for PLAINTEXT). ``faust.SASLCredentials``'s
    repr shows the username only."""
    import faust

    proto = effective_protocol(settings)
    if proto == "PLAINTEXT":
        return None
    if proto == "SSL":
        return faust.SSLCredentials(_ssl_context(settings))
    return faust.SASLCredentials(
        username=settings.sasl_username,
        password=settings.sasl_password,
        mechanism=settings.sasl_mechanism.upper(),
        ssl_context=_ssl_context(settings) if proto == "SASL_SSL" else None,
    )
