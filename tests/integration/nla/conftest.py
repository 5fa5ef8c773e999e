"""Peers for the NLA tests: the card tests' PKI and isolated pcscd."""

from tests.integration.card.conftest import pcscd, pki  # noqa: F401 - fixtures used here
