"""A private certificate authority and broker certificate for the local Kafka (issue 9.9).

``watchfloor kafka start --secure`` keeps them in ``<data dir>/tls`` (mode 0700):

==================  ===============================================================
``ca.pem``          the local CA's certificate: what clients trust
                    (``WATCHFLOOR_SSL_CAFILE``)
``ca.key``          the CA's private key (0600); only needed to issue certificates
``broker.pem``      the broker's key and certificate chain, one PEM file (0600): the
                    Kafka keystore (``ssl.keystore.type=PEM``)
==================  ===============================================================

The broker certificate names ``127.0.0.1`` and ``localhost`` and is valid for server and
client authentication: the broker presents it on the client listener (TLS) and on the
controller listener, where mutual TLS is required — the broker's own connection to its
controller authenticates with it, and a local process without a certificate signed by
this CA cannot even complete the handshake (it used to send CreateAcls as the
``ANONYMOUS`` super user).

Generated once with the ``cryptography`` package, renewed when less than 30 days are
left; the CA is kept, so clients keep trusting the same ``ca.pem``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

BROKER_CN = "watchfloor-broker"
#: The principal Kafka derives from the broker certificate (ssl.principal.mapping.rules
#: DEFAULT: the whole subject DN).
BROKER_PRINCIPAL = f"User:CN={BROKER_CN}"
CA_DAYS = 3650
CERT_DAYS = 825
RENEW_DAYS = 30


@dataclass(frozen=True)
class TlsFiles:
    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def keystore(self) -> Path:
        return self.dir / "broker.pem"


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


def _expires_soon(pem: Path) -> bool:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(pem.read_bytes())
    except (OSError, ValueError):
        return True
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    return left < dt.timedelta(days=RENEW_DAYS)


def ensure_tls(dir: Path, label: str = "") -> TlsFiles:
    """The CA and broker certificate in ``dir`` (created or renewed when needed);
    ``label`` (at most 16 characters of it) goes into the CA's name.

    >>> import tempfile
    >>> files = ensure_tls(Path(tempfile.mkdtemp()) / "tls", label="a long label " * 10)
    >>> sorted(p.name for p in files.dir.iterdir())
    ['broker.pem', 'ca.key', 'ca.pem']
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    files = TlsFiles(dir)
    dir.mkdir(parents=True, exist_ok=True)
    dir.chmod(0o700)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # tolerate small clock skew
    pem = serialization.Encoding.PEM
    if files.ca_key.exists() and files.ca_cert.exists() and not _expires_soon(files.ca_cert):
        ca_key = serialization.load_pem_private_key(files.ca_key.read_bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        # A CN is at most 64 characters: a random id, not the (long) data dir path.
        cn = f"watchfloor local CA {label[:16]} {os.urandom(4).hex()}".replace("  ", " ")
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn[:64])])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write_private(
            files.ca_key,
            ca_key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
        files.ca_cert.write_bytes(ca_cert.public_bytes(pem))
        files.keystore.unlink(missing_ok=True)  # issued by the old CA
    if files.keystore.exists() and not _expires_soon(files.keystore):
        return files
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, BROKER_CN)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(
        files.keystore,
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + cert.public_bytes(pem)
        + ca_cert.public_bytes(pem),
    )
    return files
