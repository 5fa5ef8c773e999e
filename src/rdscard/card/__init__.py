"""The virtual PIV card (NIST SP 800-73-4) and its vpcd connector."""
