"""A certificate authority of the test's own, made with openssl, and certificates it issues."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@dataclass(frozen=True)
class TestCa:
    """A CA: `cert` is what a client trusts (its PEM file), `issue` makes server certificates."""

    __test__ = False  # not a test class, despite the name

    folder: Path
    cert: Path
    key: Path

    @classmethod
    def make(cls, folder: Path) -> TestCa:
        if shutil.which("openssl") is None:
            pytest.skip("needs the openssl tool")
        cert, key = folder / "ca.pem", folder / "ca-key.pem"
        _openssl(
            *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=Test CA van de nieuwsbrief"),
            *("-addext", "basicConstraints=critical,CA:TRUE"),
            *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
        )
        return cls(folder, cert, key)

    def issue(self, name: str, *, address: str | None = None) -> tuple[Path, Path]:
        """A server certificate for the DNS name `name` (and the IP `address`, if given):
        its file and its key's file."""
        cert, key, request = (
            self.folder / f"{name}{suffix}" for suffix in (".pem", ".key", ".csr")
        )
        extensions = self.folder / f"{name}.ext"
        names = f"DNS:{name}" + (f",IP:{address}" if address else "")
        extensions.write_text(f"subjectAltName={names}\nextendedKeyUsage=serverAuth\n")
        _openssl(
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(request),
            "-subj",
            f"/CN={name}",
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            str(request),
            "-CA",
            str(self.cert),
            "-CAkey",
            str(self.key),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            str(cert),
            "-extfile",
            str(extensions),
        )
        return cert, key

    def server_context(
        self, name: str, *, address: str | None = None, max_version: ssl.TLSVersion | None = None
    ) -> ssl.SSLContext:
        """What a server with a certificate for `name` from this CA serves TLS with."""
        cert, key = self.issue(name, address=address)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        if max_version is not None:
            context.maximum_version = max_version
        return context
