"""TLS certificates and SuperNode keys for a local secure federation (development only).

What Flower's ``examples/supernode-authentication/generate_creds.py`` makes, as a function: a
self-signed CA, a SuperLink certificate for ``localhost`` / 127.0.0.1 signed by it, and one
ECDSA (P-384) key pair per SuperNode in OpenSSH format, whose public halves the SuperLink is told
with ``flwr supernode register``. For machines of a real deployment, make certificates for
the SuperLink's public name or address with your organisation's CA instead (README,
"Flower"; docs/distributed.md).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

VALID_DAYS = 30


@dataclass(frozen=True)
class Credentials:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    node_keys: tuple[Path, ...]  # private keys; the public one is ``<key>.pub``


LOCAL_HOSTS, LOCAL_ADDRESSES = ("localhost",), ("127.0.0.1", "::1")


def make_credentials(folder: Path, num_nodes: int, hosts=(), addresses=()) -> Credentials:
    """Write a CA, a server certificate and ``num_nodes`` node key pairs under ``folder``.

    The certificate names ``hosts`` and ``addresses`` (the SuperLink's public name or address
    for other machines) and always localhost, 127.0.0.1 and ::1: the SuperLink's own
    ServerApp process connects to it there, also when it listens on 0.0.0.0."""
    hosts = tuple(dict.fromkeys((*LOCAL_HOSTS, *hosts)))
    addresses = tuple(dict.fromkeys((*LOCAL_ADDRESSES, *addresses)))
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    until = now + datetime.timedelta(days=VALID_DAYS)

    def key():
        return ec.generate_private_key(ec.SECP384R1())

    def pem_key(k) -> bytes:
        return k.private_bytes(serialization.Encoding.PEM,
                               serialization.PrivateFormat.TraditionalOpenSSL,
                               serialization.NoEncryption())

    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edgeft local CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(until)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    server_key = key()
    names = [x509.DNSName(h) for h in hosts] + \
        [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
              .issuer_name(ca_name).public_key(server_key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now).not_valid_after(until)
              .add_extension(x509.SubjectAlternativeName(names), critical=False)
              .sign(ca_key, hashes.SHA256()))
    paths = Credentials(folder / "ca.crt", folder / "server.pem", folder / "server.key",
                        tuple(folder / f"supernode-{n}" for n in range(num_nodes)))
    paths.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.server_cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths.server_key.write_bytes(pem_key(server_key))
    for path in paths.node_keys:
        k = key()
        path.write_bytes(k.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.OpenSSH,
                                         serialization.NoEncryption()))
        path.with_name(path.name + ".pub").write_bytes(k.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH))
    for path in (paths.server_key, *paths.node_keys):
        path.chmod(0o600)
    return paths
