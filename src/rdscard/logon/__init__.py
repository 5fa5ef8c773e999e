"""The logon service: PIN, certificate checks, account mapping."""
