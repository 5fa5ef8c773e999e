"""Smart card redirection: the broker between session programs and clients."""
