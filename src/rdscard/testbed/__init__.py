"""Real peers for tests and the demo: an isolated pcscd with vpcd, card runners, an MIT KDC.

Each launcher starts a real process on loopback (as root where the peer needs
it) and stops it on exit; several of each can run side by side.
"""
