"""Pure codecs: bytes in, frozen dataclasses out, and back. No I/O here."""
