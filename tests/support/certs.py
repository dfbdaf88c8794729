"""Test support: real X.509 certificates made with the `openssl` command at
test time (nothing is checked in), for the TLS and mutual-TLS tests.

    ca = certs.Authority(tmp_path, "test-ca")
    cert, key = ca.issue("server", "localhost", server=True)
    expired_cert, expired_key = ca.issue("old", "localhost", server=True, days=-1)
    client_cert, client_key = ca.issue("alice", "alice")

Server certificates name localhost and 127.0.0.1 (DNS and IP
subjectAltNames), so clients dial 127.0.0.1:PORT without a name override.
Keys are P-256 (fast to make). `days` < 0 gives a certificate that expired.
"""

import os
import subprocess


def _openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True,
                   stdin=subprocess.DEVNULL, timeout=60)


class Authority:
    """A certificate authority in directory `where` (created if missing)."""

    def __init__(self, where, name):
        self.dir = os.path.join(str(where), name)
        os.makedirs(self.dir, exist_ok=True)
        self.name = name
        self.cert = os.path.join(self.dir, "ca.pem")
        self.key = os.path.join(self.dir, "ca.key")
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", self.key, "-out", self.cert, "-days", "2",
                 "-subj", f"/CN={name}")

    def issue(self, name, common_name, server=False, days=1, organization=None):
        """A certificate for `common_name` signed by this authority, as the
        paths (cert_pem, key_pem) in this authority's directory."""
        cert = os.path.join(self.dir, f"{name}.pem")
        key = os.path.join(self.dir, f"{name}.key")
        csr = os.path.join(self.dir, f"{name}.csr")
        ext = os.path.join(self.dir, f"{name}.ext")
        subject = f"/CN={common_name}" + (f"/O={organization}" if organization else "")
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", key, "-out", csr, "-subj", subject)
        with open(ext, "w") as f:
            if server:
                f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                        "extendedKeyUsage=serverAuth\n")
            else:
                f.write("extendedKeyUsage=clientAuth\n")
        _openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
                 "-CAcreateserial", "-out", cert, "-days", str(days), "-extfile", ext)
        return cert, key


def read(path):
    with open(path, "rb") as f:
        return f.read()
