"""The intercept certificate authority: the CA, its leaf certificates, the per-user store.

The CA is ephemeral by default (a key in memory, gone when the run ends) or persistent
(`corsproxy ca init`: `$XDG_DATA_HOME/corsproxy/`, directory 0700, key 0600, never inside a
project). Either way it carries critical name constraints permitting only the hosts of the
config and excluding every IP range, so a `ca.pem` imported into some trust store cannot vouch
for anything else. In the throwaway browser profile the SPKI pin is the boundary: Chromium does
not check name constraints of a pinned CA.

Leaves are ECDSA P-256, one key per process, one certificate per host, cached; each is served
with the CA in its chain (Chromium refuses a leaf-only chain even with the CA pinned).
Python's `ssl` loads a key only from a file: it goes into a 0600 temporary file that is
removed as soon as `load_cert_chain` has read it.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import ssl
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from corsproxy.errors import StoreError
from corsproxy.policy.intercept import CA_COMMON_NAME, CA_DAYS, EXCLUDED_IP_RANGES, LEAF_DAYS, sni_matches

CERT_FILE, KEY_FILE = "ca.pem", "ca-key.pem"
# Leaves are issued a little in the past so a clock a minute behind does not refuse them.
BACKDATE = datetime.timedelta(minutes=5)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def spki_sha256(cert: x509.Certificate) -> str:
    """base64(sha256(SubjectPublicKeyInfo)): what --ignore-certificate-errors-spki-list takes."""
    der = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def build_ca(names: Iterable[str]) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new CA key and self-signed certificate permitted to sign only for `names`."""
    key = _new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "corsproxy (development only)")])
    constraints = x509.NameConstraints(
        permitted_subtrees=[x509.DNSName(name) for name in sorted(set(names))],
        excluded_subtrees=[x509.IPAddress(ipaddress.ip_network(r)) for r in EXCLUDED_IP_RANGES])
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(constraints, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def permitted_names(cert: x509.Certificate) -> tuple[str, ...]:
    """The DNS names a CA's name constraints permit ((): it has none, so it permits nothing)."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(sub.value for sub in ext.permitted_subtrees or () if isinstance(sub, x509.DNSName))


def permits(cert: x509.Certificate, host: str) -> bool:
    """RFC 5280 §4.2.1.10: a dNSName constraint covers the name itself and its subdomains."""
    return any(host == name or host.endswith("." + name) for name in permitted_names(cert))


class Authority:
    """A CA and the TLS server contexts it makes, one per intercepted host, cached."""

    # One leaf key per process (issue #14): making a P-256 key is cheap, but one per host and
    # per reload would be wasted work, and nothing is gained by separate keys.
    _leaf_key: ec.EllipticCurvePrivateKey | None = None

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, origin: str) -> None:
        self._key, self.cert, self.origin = key, cert, origin
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        self.spki = spki_sha256(cert)
        self._contexts: dict[str, ssl.SSLContext] = {}

    @classmethod
    def ephemeral(cls, names: Iterable[str]) -> Authority:
        return cls(*build_ca(names), origin="ephemeral")

    def context_for(self, host: str) -> ssl.SSLContext:
        """The server context for a tunnel to `host`, made once; its handshake fails unless the
        client's SNI names `host` (a tunnel opened for one host carries only that host)."""
        context = self._contexts.get(host)
        if context is None:
            context = self._contexts[host] = self._server_context(host)
        return context

    def _server_context(self, host: str) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_alpn_protocols(["http/1.1"])  # the tunnel speaks HTTP/1.1 only
        pem = self._leaf_pem(host)
        descriptor, name = tempfile.mkstemp(prefix="corsproxy-leaf-", suffix=".pem")  # mode 0600
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(pem)
            context.load_cert_chain(name)
        finally:
            os.unlink(name)

        def check_sni(_sock, server_name, _context):
            return None if sni_matches(server_name, host) else ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME

        context.sni_callback = check_sni
        return context

    def _leaf_pem(self, host: str) -> bytes:
        """Key, leaf and CA, PEM, as load_cert_chain wants them in one file."""
        if Authority._leaf_key is None:
            Authority._leaf_key = _new_key()
        key = Authority._leaf_key
        now = _now()
        leaf = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
                .issuer_name(self.cert.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - BACKDATE).not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                               critical=False)
                .sign(self._key, hashes.SHA256()))
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return key_pem + leaf.public_bytes(serialization.Encoding.PEM) + self.cert_pem


# ---------------------------------------------------------------- the per-user store


@dataclass(frozen=True, slots=True)
class Store:
    """Where the persistent CA lives: `$XDG_DATA_HOME/corsproxy/` (~/.local/share/corsproxy)."""

    directory: Path

    @classmethod
    def for_user(cls, env: dict[str, str] | os._Environ = os.environ) -> Store:
        base = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
        return cls(Path(base).absolute() / "corsproxy")

    @property
    def cert_file(self) -> Path:
        return self.directory / CERT_FILE

    @property
    def key_file(self) -> Path:
        return self.directory / KEY_FILE

    def exists(self) -> bool:
        return self.cert_file.exists() or self.key_file.exists()

    def refuse_inside(self, projects: Iterable[Path]) -> None:
        """The key never goes inside a project tree (it could be committed)."""
        where = self.directory.resolve()
        for project in projects:
            root = project.resolve()
            if where == root or root in where.parents:
                raise StoreError(f"{self.directory} is inside the project {root}; the CA key must never be "
                                 "in a project tree: set XDG_DATA_HOME to a folder outside it")

    def create(self, names: Iterable[str]) -> Authority:
        if self.exists():
            raise StoreError(f"a persistent CA already exists in {self.directory}; "
                             "'corsproxy ca remove' first to make a new one")
        key, cert = build_ca(names)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        # O_EXCL and mode 0600 at creation: the key is never readable by others, not even briefly.
        descriptor = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(key_pem)
        self.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return Authority(key, cert, origin=str(self.directory))

    def load(self) -> Authority:
        if not self.key_file.exists() or not self.cert_file.exists():
            raise StoreError(f"no persistent CA in {self.directory}; make one with 'corsproxy ca init -c PATH'")
        self._refuse_loose_modes()
        try:
            key = serialization.load_pem_private_key(self.key_file.read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
        except (ValueError, TypeError) as exc:
            raise StoreError(f"the CA in {self.directory} cannot be read ({exc}); "
                             "'corsproxy ca remove' and 'corsproxy ca init' make a new one") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise StoreError(f"{self.key_file} is not an EC key; 'corsproxy ca remove' and init again")
        return Authority(key, cert, origin=str(self.directory))

    def remove(self) -> bool:
        found = False
        for file in (self.key_file, self.cert_file):
            if file.exists():
                file.unlink()
                found = True
        if self.directory.exists() and not any(self.directory.iterdir()):
            self.directory.rmdir()
        return found

    def _refuse_loose_modes(self) -> None:
        for path, mode in ((self.directory, 0o700), (self.key_file, 0o600)):
            st = path.stat()
            if st.st_uid != os.getuid():
                raise StoreError(f"{path} belongs to another user; corsproxy uses only a CA of your own")
            if stat.S_IMODE(st.st_mode) & 0o077:
                raise StoreError(f"{path} is readable by others (mode {stat.S_IMODE(st.st_mode):o}); "
                                 f"run: chmod {mode:o} {path}")
