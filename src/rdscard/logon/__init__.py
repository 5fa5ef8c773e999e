"""The logon service: PIN, certificate checks, account mapping.

- :mod:`~rdscard.logon.service` - :class:`LogonService.sign_in`, the steps in order;
- :mod:`~rdscard.logon.ntauth` - the enterprise NTAuth store (``STATE/ntauth``);
- :mod:`~rdscard.logon.validation` - chain to NTAuth, validity, EKU, key usage, CRLs, UPN;
- :mod:`~rdscard.logon.mapping` - UPN (and domain hint) to account, realm and principal;
- :mod:`~rdscard.logon.challenge` - one PIN check and proof of possession on the card;
- :mod:`~rdscard.logon.pkinit` - the ``kinit`` worker and its credential cache;
- :mod:`~rdscard.logon.ccache` - the MIT credential cache file format;
- :mod:`~rdscard.logon.audit` - the JSON-lines audit log;
- :mod:`~rdscard.logon.settings` - the ``[logon]`` configuration section;
- :mod:`~rdscard.logon.refusal` - :class:`SignInRefused` and its reason codes.
"""
