"""The local certificate authority and keys of the dev stack.

The real SDKs refuse bearer tokens over plain http and ``from_connection_string`` always speaks
https, so the local ACS emulator and Azurite need certificates that clients genuinely trust. A
tiny CA is created once per state directory and its certificate is handed to clients through
SSL_CERT_FILE / REQUESTS_CA_BUNDLE, so TLS verification stays on everywhere.

The same directory holds the RSA key the local managed-identity endpoint signs its JWTs with;
verifiers (the ACS emulator, tests) read its public half.

Files are created only when absent, so restarting the stack keeps every client's trust and every
token already issued. A lock file makes concurrent first starts agree on one CA.
"""

from __future__ import annotations

import base64
import datetime as dt
import fcntl
import hashlib
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_VALIDITY = dt.timedelta(days=365)
CA_VALIDITY = dt.timedelta(days=3650)
#: Renew the server certificate when it has less than this left, so a long-lived state dir keeps working.
RENEW_BEFORE = dt.timedelta(days=7)


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files of the local PKI."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    signing_key: Path
    signing_public: Path

    def server_ssl_context(self) -> ssl.SSLContext:
        """A TLS server context presenting the loopback certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.server_cert, self.server_key)
        return context

    def client_ssl_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts exactly the local CA."""
        return ssl.create_default_context(cafile=str(self.ca_cert))

    def signing_kid(self) -> str:
        """The key id (``kid``) of the managed-identity signing key."""
        return key_id(self.signing_public.read_bytes())


def key_id(public_pem: bytes) -> str:
    """A stable key id for a public key: base64url of the SHA-256 of its DER form (like a JWK thumbprint)."""
    public_key = serialization.load_pem_public_key(public_pem)
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()[:16]).rstrip(b"=").decode()


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_or_create_rsa_key(path: Path) -> rsa.RSAPrivateKey:
    """The RSA private key in ``path``, created (mode 0600, written atomically) when absent."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} does not hold an RSA private key")
        return key
    key = new_rsa_key()
    write_atomically(path, private_pem(key), secret=True)
    return key


def write_atomically(path: Path, data: bytes, *, secret: bool = False) -> None:
    """Write ``data`` so that readers see the old file or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    descriptor = os.open(temporary, flags, 0o600 if secret else 0o644)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ACS token service dev stack"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _create_ca(directory: Path) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = new_rsa_key()
    now = dt.datetime.now(dt.timezone.utc)
    name = _name("ACS token service local CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_atomically(directory / "ca.key", private_pem(key), secret=True)
    write_atomically(directory / "ca.pem", cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _create_server_cert(directory: Path, ca_cert: x509.Certificate, ca_key: rsa.RSAPrivateKey) -> None:
    key = new_rsa_key()
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    write_atomically(directory / "server.key", private_pem(key), secret=True)
    write_atomically(directory / "server.pem", cert.public_bytes(serialization.Encoding.PEM))


def _server_cert_usable(directory: Path, ca_cert: x509.Certificate) -> bool:
    path = directory / "server.pem"
    if not (path.exists() and (directory / "server.key").exists()):
        return False
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    fresh = cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc) > RENEW_BEFORE
    return fresh and cert.issuer == ca_cert.subject and _signed_by(cert, ca_cert)


def _signed_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except Exception:  # noqa: BLE001 - any failure (bad signature, wrong key type) means "not ours"
        return False
    return True


def ensure_pki(state_dir: Path) -> Pki:
    """Create (when absent) and return the local CA, the loopback server certificate and the
    managed-identity signing key under ``state_dir/pki``. Existing files are reused."""
    directory = Path(state_dir).resolve() / "pki"
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (directory / "ca.pem").exists() and (directory / "ca.key").exists():
            ca_cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
            ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
            assert isinstance(ca_key, rsa.RSAPrivateKey)
        else:
            ca_cert, ca_key = _create_ca(directory)
        if not _server_cert_usable(directory, ca_cert):
            _create_server_cert(directory, ca_cert, ca_key)
        signing = load_or_create_rsa_key(directory / "signing.key")
        signing_public = directory / "signing.pub"
        if not signing_public.exists() or signing_public.read_bytes() != public_pem(signing):
            write_atomically(signing_public, public_pem(signing))
    return Pki(
        ca_cert=directory / "ca.pem",
        ca_key=directory / "ca.key",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        signing_key=directory / "signing.key",
        signing_public=signing_public,
    )
