"""The client's TLS and token options against a coordinator that requires
both (certificates made here with openssl, as the security test does)."""

from __future__ import annotations

import os
import subprocess
import unittest

import distillery
from cluster import Cluster

TOKEN = "client-token-789"

CERTS = r"""set -e
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca.key
openssl req -x509 -new -key ca.key -out ca.crt -days 2 -subj /CN=test-ca 2>/dev/null
key server.key
openssl req -new -key server.key -out server.csr -subj /CN=coordinator 2>/dev/null
printf 'subjectAltName=DNS:coordinator,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
  -out server.crt -days 2 -extfile server.ext 2>/dev/null
"""


def make_secrets(folder: str) -> None:
    subprocess.run(["bash", "-c", CERTS], cwd=folder, check=True)
    with open(os.path.join(folder, "client.token"), "w") as f:
        f.write(TOKEN + "\n")


class SecureClientTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(workers=0, before_start=make_secrets,
                              coordinator_args=[
                                  "--tls-cert", "server.crt",
                                  "--tls-key", "server.key",
                                  "--auth-token-file", "client.token"])
        cls.ca = os.path.join(cls.cluster.dir, "ca.crt")

    @classmethod
    def tearDownClass(cls):
        cls.cluster.close()

    def test_tls_with_the_token_is_served(self):
        token_file = os.path.join(self.cluster.dir, "client.token")
        with distillery.Client(self.cluster.address, tls_ca=self.ca,
                               token_file=token_file) as c:
            job = c.submit([{"prompt": "Say hi."}], teacher="sim",
                           model="sim-small")
            self.assertEqual(c.job(job).prompts, 1)
            self.assertIn(job.id, [j.id for j in c.jobs()])
        # The server name checked against the certificate, as --tls-server-name.
        with distillery.Client(self.cluster.address, tls_ca=self.ca,
                               tls_server_name="coordinator",
                               token=TOKEN) as c:
            self.assertTrue(c.jobs())

    def test_without_the_token_calls_are_refused(self):
        with distillery.Client(self.cluster.address, tls_ca=self.ca) as c:
            with self.assertRaises(distillery.DistilleryError) as caught:
                c.jobs()
        self.assertEqual(caught.exception.code, "UNAUTHENTICATED")
        self.assertIn("missing bearer token", caught.exception.message)
        with distillery.Client(self.cluster.address, tls_ca=self.ca,
                               token="wrong") as c:
            with self.assertRaises(distillery.DistilleryError) as caught:
                c.jobs()
        self.assertEqual(caught.exception.code, "UNAUTHENTICATED")

    def test_plaintext_never_connects(self):
        with self.assertRaises(distillery.DistilleryError) as caught:
            distillery.Client(self.cluster.address, token=TOKEN,
                              connect_timeout=1.5)
        self.assertEqual(caught.exception.code, "UNAVAILABLE")
        self.assertIn("plaintext", caught.exception.message)


if __name__ == "__main__":
    unittest.main()
