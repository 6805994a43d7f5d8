"""A private MariaDB with TLS, for the tests of ``mysql://`` options the shared server cannot
show (it has no TLS, and its socket may not be ours to reach).

mariadb-install-db and mariadbd run as the ``mysql`` user, in a directory and on a port of the
server's own, with a certificate authority made for it: the server's certificate (for
127.0.0.1) and a client certificate are signed by it. Stopping it removes everything.
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import tempfile
from ipaddress import IPv4Address
from pathlib import Path

import pymysql
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .redis_servers import wait_until
from .servers import free_port
from .services import reachable

SERVER = "/usr/sbin/mariadbd"


def available() -> bool:
    """Whether this machine can run one: root (to run the server as ``mysql``) and MariaDB's
    server binaries."""
    return (
        os.geteuid() == 0
        and Path(SERVER).exists()
        and shutil.which("mariadb-install-db") is not None
    )


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    usage: x509.ObjectIdentifier | None = None,
    names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    """A day-long certificate for ``subject``, for ``usage`` (server or client) under the
    alternative ``names``; self-signed, and a CA's, when ``issuer`` is None."""
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            True,
        )
    else:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage] if usage else []), False)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
    return builder.sign(issuer_key, hashes.SHA256())


class PrivateMariaDB:
    """A MariaDB listening on 127.0.0.1 (TLS offered, not required) and on a socket of its own.

    ``ca``, ``client_certificate`` and ``client_key`` are the PEM files a client needs;
    ``socket`` is the server's Unix socket.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="coatcheck-mariadb-"))
        self.socket = self.directory / "mariadb.sock"
        self.ca = self.directory / "ca.pem"
        self.client_certificate = self.directory / "client.pem"
        self.client_key = self.directory / "client-key.pem"
        self._process: subprocess.Popen[bytes] | None = None
        self._certificates()
        shutil.chown(self.directory, "mysql", "mysql")
        for path in self.directory.iterdir():
            shutil.chown(path, "mysql", "mysql")
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                "--user=mysql",
                f"--datadir={self.directory / 'data'}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _certificates(self) -> None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _issue("coatcheck test CA", ca_key, None, ca_key)
        self.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        server_names: list[x509.GeneralName] = [
            x509.IPAddress(IPv4Address("127.0.0.1")),
            x509.DNSName("localhost"),
        ]
        for name, usage, names in (
            ("server", ExtendedKeyUsageOID.SERVER_AUTH, server_names),
            ("client", ExtendedKeyUsageOID.CLIENT_AUTH, None),
        ):
            key = ec.generate_private_key(ec.SECP256R1())
            certificate = _issue(f"coatcheck test {name}", key, ca, ca_key, usage, names)
            (self.directory / f"{name}.pem").write_bytes(
                certificate.public_bytes(serialization.Encoding.PEM)
            )
            (self.directory / f"{name}-key.pem").write_bytes(_pem(key))

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                SERVER,
                "--no-defaults",
                "--user=mysql",
                f"--datadir={self.directory / 'data'}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.socket}",
                f"--pid-file={self.directory / 'mariadb.pid'}",
                f"--log-error={self.directory / 'error.log'}",
                f"--ssl-ca={self.ca}",
                f"--ssl-cert={self.directory / 'server.pem'}",
                f"--ssl-key={self.directory / 'server-key.pem'}",
                "--innodb-buffer-pool-size=16M",
                "--skip-log-bin",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: reachable("127.0.0.1", self.port), "private MariaDB")
        self.sql("CREATE DATABASE test")

    def sql(self, statement: str) -> list[tuple[object, ...]]:
        """One statement as root, over TCP without TLS."""
        conn = pymysql.connect(
            host="127.0.0.1", port=self.port, user="root", database=None, autocommit=True
        )
        try:
            with conn.cursor() as cursor:
                cursor.execute(statement)
                return list(cursor.fetchall())
        finally:
            conn.close()

    def url(self, user: str = "root", *, host: str | None = None) -> str:
        """A ``mysql://`` URL of its ``test`` database (options to be added by the caller)."""
        return f"mysql://{user}@{host or f'127.0.0.1:{self.port}'}/test"

    def remove(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)
