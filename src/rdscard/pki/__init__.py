"""Test PKI and card provisioning over PC/SC."""
