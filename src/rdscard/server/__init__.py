"""asyncio adapters: sockets, TLS, the screen renderer."""
