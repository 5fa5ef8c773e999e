"""Active Directory: the forest's NTAuth CAs published and followed over LDAP.

- :mod:`~rdscard.directory.settings` - the ``[directory]`` section (off by default);
- :mod:`~rdscard.directory.ntauth` - ``NTAuthCertificates``: read, publish, remove,
  and the monitor's refresh of the host's store.
"""
