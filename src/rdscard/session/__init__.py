"""Per-session desktops run as the signed-in account.

The RDP-facing server never becomes the user. For each signed-in session it
starts a small privileged *session leader* (``python -m
rdscard.session.leader``, as root) and talks to it over pipes, as sshd and
xrdp's sesman do: the leader opens the PAM session, starts the X server and
the desktop as the account, and at logoff ends every process of the session
and closes PAM with the same handle.

- :mod:`rdscard.session.spec` - what the server asks for (:class:`LeaderSpec`)
- :mod:`rdscard.session.pam` - a ctypes binding of libpam (account + session)
- :mod:`rdscard.session.cleanup` - finding and ending a session's processes
- :mod:`rdscard.session.leader` - the leader process
- :mod:`rdscard.session.leader_client` - the server's asyncio side

This package imports nothing heavy: the leader starts in a fresh interpreter.
"""
