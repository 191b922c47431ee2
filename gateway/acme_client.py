"""Obtaining a certificate over ACME (RFC 8555) with certbot's ``acme`` library and josepy: the
account, the order, the HTTP-01 challenges, the finalization. No JOSE is written here.

Synchronous (the library speaks through ``requests``): :mod:`gateway.tls` runs :func:`obtain`
in a thread. Challenges are published through a callback into the dict that the plain-HTTP
port serves at ``/.well-known/acme-challenge/<token>``.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

import josepy as jose
import requests
from acme import challenges, client, crypto_util, messages
from acme import errors as acme_errors
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from . import __version__

ORDER_TIMEOUT = 90.0  # seconds for the CA to validate and issue
RATE_LIMIT_WAIT = 3600.0  # the least wait after a rateLimited answer (Let's Encrypt's window)


class AcmeError(Exception):
    """The ACME exchange failed; ``retry_after`` is the least wait before the next attempt."""

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def new_key_pem() -> bytes:
    """A new ECDSA P-256 private key, PKCS#8 PEM (for the account and for certificates)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _jwk(account_key_pem: bytes) -> jose.JWK:
    key = serialization.load_pem_private_key(account_key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise AcmeError("the ACME account key is not an ECDSA key")
    return jose.JWKEC(key=key)


def _problem(exc: messages.Error) -> AcmeError:
    """An ACME problem document as one line; rateLimited waits at least an hour."""
    text = f"{exc.code or exc.typ}: {exc.detail or exc.title or ''}".strip().rstrip(":")
    if exc.code == "rateLimited":
        return AcmeError(f"the ACME server rate-limits this account ({text})", RATE_LIMIT_WAIT)
    return AcmeError(f"the ACME server refused ({text})")


def _validation_failure(exc: acme_errors.ValidationError) -> AcmeError:
    """Which domain failed its HTTP-01 check and the CA's reason (DNS, connection, content)."""
    reasons = []
    for authzr in exc.failed_authzrs:
        domain = authzr.body.identifier.value
        detail = next((f"{c.error.code}: {c.error.detail}" for c in authzr.body.challenges
                       if c.error is not None), "invalid")
        reasons.append(f"{domain} ({detail})")
    return AcmeError("the ACME server could not validate " + "; ".join(reasons) + ". Check that "
                     "the domain's DNS points at this machine and that its port 80 reaches "
                     "converger's HTTP port")


class Order:
    """One ACME certificate order against ``directory_url``."""

    def __init__(self, directory_url: str, account_key_pem: bytes, *, email: str = "",
                 ca_bundle: str = "", timeout: float = ORDER_TIMEOUT) -> None:
        self.directory_url = directory_url
        self.key = _jwk(account_key_pem)
        self.email = email
        self.verify: bool | str = ca_bundle or True
        self.timeout = timeout

    def _client(self) -> client.ClientV2:
        net = client.ClientNetwork(self.key, alg=jose.ES256, verify_ssl=self.verify,  # type: ignore[arg-type]
                                   user_agent=f"converger/{__version__}", timeout=30)
        directory = client.ClientV2.get_directory(self.directory_url, net)
        acme = client.ClientV2(directory, net)
        registration = messages.NewRegistration.from_data(
            email=self.email or None, terms_of_service_agreed=True)
        try:
            acme.new_account(registration)
        except acme_errors.ConflictError as exc:  # the key is registered already: use it
            net.account = messages.RegistrationResource(uri=exc.location,
                                                        body=messages.Registration())
        return acme

    def obtain(self, domains: list[str], publish: Callable[[str, str], None],
               withdraw: Callable[[str], object]) -> tuple[bytes, bytes]:
        """A new key and its certificate chain for ``domains``: ``(key_pem, fullchain_pem)``."""
        try:
            return self._obtain(domains, publish, withdraw)
        except messages.Error as exc:
            raise _problem(exc) from None
        except acme_errors.ValidationError as exc:
            raise _validation_failure(exc) from None
        except acme_errors.TimeoutError:
            raise AcmeError(f"the ACME server did not issue within {self.timeout:.0f}s") from None
        except requests.RequestException as exc:
            raise AcmeError(f"the ACME server {self.directory_url} cannot be reached "
                            f"({type(exc).__name__}: {exc})") from None
        except acme_errors.Error as exc:
            raise AcmeError(f"ACME failed: {exc}") from None

    def _obtain(self, domains: list[str], publish: Callable[[str, str], None],
                withdraw: Callable[[str], object]) -> tuple[bytes, bytes]:
        acme = self._client()
        key_pem = new_key_pem()
        order = acme.new_order(crypto_util.make_csr(key_pem, domains))
        tokens: list[str] = []
        try:
            for authz in order.authorizations:
                if authz.body.status == messages.STATUS_VALID:
                    continue  # validated recently: the CA reuses it
                challb = next((c for c in authz.body.challenges
                               if isinstance(c.chall, challenges.HTTP01)), None)
                if challb is None:
                    raise AcmeError(f"the ACME server offers no HTTP-01 challenge for "
                                    f"{authz.body.identifier.value}")
                response, validation = challb.chall.response_and_validation(self.key)
                token = challb.chall.encode("token")
                publish(token, validation)
                tokens.append(token)
                acme.answer_challenge(challb, response)
            deadline = datetime.datetime.now() + datetime.timedelta(seconds=self.timeout)
            order = acme.poll_and_finalize(order, deadline)
        finally:
            for token in tokens:
                withdraw(token)
        if not order.fullchain_pem:
            raise AcmeError("the ACME server finalized the order without a certificate")
        return key_pem, order.fullchain_pem.encode()
