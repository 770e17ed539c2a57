"""A certificate authority and a broker certificate, made at run time with the JDK's keytool.

Nothing here is committed: every call makes fresh keys in the folder it is given (a
test's temporary folder), with a random store password. keytool ships with every JDK,
and the local Apache Kafka needs one anyway.

- `make_ca(folder, name)`: a self-signed CA; its certificate as PEM is what clients
  trust (FUNNEL_SSL_CAFILE). A second CA makes a "wrong CA" for a test.
- `broker_keystore(folder, ca)`: a PKCS12 keystore holding the broker's key and its
  certificate, signed by `ca`, valid for 127.0.0.1 and localhost, with the CA in the chain.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from localbrokers.kafkajars import NoKafka, java_binary

VALIDITY_DAYS = "2"
KEY = ["-keyalg", "EC", "-groupname", "secp256r1"]  # quick to make; every TLS client takes it
KEYTOOL_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class CertificateAuthority:
    name: str
    keystore: Path  # PKCS12, the CA's key (for signing)
    password: str = field(repr=False)
    pem: Path  # the CA's certificate: what a client trusts


@dataclass(frozen=True)
class Keystore:
    path: Path  # PKCS12: the broker's key and certificate chain
    password: str = field(repr=False)  # the store's and the key's
    certificate: Path  # the broker's certificate (PEM)


def keytool() -> str:
    """keytool beside the `java` Kafka runs on, else the one on PATH."""
    beside = java_binary().resolve().parent / "keytool"
    if beside.is_file():
        return str(beside)
    found = shutil.which("keytool")
    if found is None:
        raise NoKafka("keytool (part of the JDK) is not installed: it makes the test certificates")
    return found


def _run(*args: str) -> None:
    done = subprocess.run([keytool(), *args], capture_output=True, text=True, timeout=KEYTOOL_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"keytool {args[0]} failed ({done.returncode}): {(done.stdout + done.stderr)[-2000:]}")


def make_ca(folder: Path, name: str = "funnel-test-ca") -> CertificateAuthority:
    folder.mkdir(parents=True, exist_ok=True)
    keystore, pem, password = folder / f"{name}.p12", folder / f"{name}.pem", secrets.token_hex(16)
    store = ["-keystore", str(keystore), "-storetype", "PKCS12", "-storepass", password]
    _run("-genkeypair", "-alias", "ca", "-dname", f"CN={name}", *KEY, "-validity", VALIDITY_DAYS, *store,
         "-ext", "bc:c")  # fmt: skip
    _run("-exportcert", "-rfc", "-alias", "ca", "-file", str(pem), *store)
    return CertificateAuthority(name, keystore, password, pem)


def broker_keystore(folder: Path, ca: CertificateAuthority, name: str = "broker") -> Keystore:
    folder.mkdir(parents=True, exist_ok=True)
    path, password = folder / f"{name}.p12", secrets.token_hex(16)
    request, certificate = folder / f"{name}.csr", folder / f"{name}.pem"
    store = ["-keystore", str(path), "-storetype", "PKCS12", "-storepass", password]
    ca_store = ["-keystore", str(ca.keystore), "-storetype", "PKCS12", "-storepass", ca.password]
    _run("-genkeypair", "-alias", name, "-dname", "CN=localhost", *KEY, "-validity", VALIDITY_DAYS, *store)
    _run("-certreq", "-alias", name, "-file", str(request), *store)
    _run("-gencert", "-alias", "ca", "-infile", str(request), "-outfile", str(certificate), "-rfc",
         "-validity", VALIDITY_DAYS, "-ext", "SAN=ip:127.0.0.1,dns:localhost", *ca_store)  # fmt: skip
    _run("-importcert", "-noprompt", "-alias", "ca", "-file", str(ca.pem), *store)
    _run("-importcert", "-alias", name, "-file", str(certificate), *store)
    request.unlink()
    return Keystore(path, password, certificate)
