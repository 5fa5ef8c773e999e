"""Sans-IO state machines: bytes and time in, bytes and events out."""
