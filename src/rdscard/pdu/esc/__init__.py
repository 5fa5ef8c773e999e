"""MS-RDPESC smart card redirection calls and returns, NDR-serialized.

Constants live in :mod:`.constants`; the structures in :mod:`.context`,
:mod:`.status_change`, :mod:`.card`, :mod:`.io` and :mod:`.cache`; the
IOCTL table in :mod:`.dispatch`.
"""
