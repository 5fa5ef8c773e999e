"""A small ctypes binding of Linux-PAM for account and session management.

The session leader needs one PAM handle that lives from ``pam_open_session``
to ``pam_close_session`` (modules keep per-session state in it, pam_systemd
and pam_limits among them) and the environment the session modules set
(``pam_getenvlist``, where XDG_RUNTIME_DIR comes from). python-pam and
pamela were considered: neither keeps one handle from open to close, nor
gives ``pam_getenvlist``. So this binds the few libpam calls directly.

There is no authentication here: the smart card and its PIN were verified
by rdscard before a session is opened, so the conversation answers no
prompt (``PAM_CONV_ERR``) and only logs the modules' messages.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from typing import Any

from rdscard.errors import RdscardError

PAM_SUCCESS = 0
PAM_CONV_ERR = 19
PAM_BUF_ERR = 5

# Item types (security/_pam_types.h).
PAM_SERVICE = 1
PAM_USER = 2
PAM_TTY = 3
PAM_RHOST = 4
PAM_CONV = 5
PAM_RUSER = 8
PAM_XDISPLAY = 11

# Message styles.
PAM_PROMPT_ECHO_OFF = 1
PAM_PROMPT_ECHO_ON = 2
PAM_ERROR_MSG = 3
PAM_TEXT_INFO = 4

# pam_setcred flags.
PAM_ESTABLISH_CRED = 0x0002
PAM_DELETE_CRED = 0x0004
PAM_SILENT = 0x8000

log = logging.getLogger(__name__)


class PamError(RdscardError):
    """A PAM call failed: ``step`` names it, ``code`` is its PAM return value."""

    def __init__(self, step: str, code: int, reason: str) -> None:
        self.step = step
        self.code = code
        self.reason = reason
        super().__init__(f"PAM {step} failed: {reason} (PAM error {code})")


class _Message(ctypes.Structure):
    _fields_ = [("msg_style", ctypes.c_int), ("msg", ctypes.c_char_p)]


class _Response(ctypes.Structure):
    _fields_ = [("resp", ctypes.c_char_p), ("resp_retcode", ctypes.c_int)]


_CONV_FUNC = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.POINTER(_Message)),
    ctypes.POINTER(ctypes.POINTER(_Response)), ctypes.c_void_p)


class _Conv(ctypes.Structure):
    _fields_ = [("conv", _CONV_FUNC), ("appdata_ptr", ctypes.c_void_p)]


_libs: tuple[Any, Any] | None = None


def _load() -> tuple[Any, Any]:
    """libpam and libc, loaded once; a clear error when libpam is missing."""
    global _libs
    if _libs is not None:
        return _libs
    # The usual sonames first: find_library runs ldconfig, which costs a fork.
    try:
        pam = ctypes.CDLL("libpam.so.0")
    except OSError:
        try:
            pam = ctypes.CDLL(ctypes.util.find_library("pam") or "libpam.so")
        except OSError as exc:
            raise PamError("load", -1, f"cannot load libpam ({exc}): install libpam0g") from None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.calloc.restype = ctypes.c_void_p
    libc.calloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    handle_p = ctypes.c_void_p
    pam.pam_start.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(_Conv),
                              ctypes.POINTER(handle_p)]
    pam.pam_end.argtypes = [handle_p, ctypes.c_int]
    pam.pam_set_item.argtypes = [handle_p, ctypes.c_int, ctypes.c_void_p]
    for call in ("pam_acct_mgmt", "pam_setcred", "pam_open_session", "pam_close_session"):
        getattr(pam, call).argtypes = [handle_p, ctypes.c_int]
    pam.pam_strerror.argtypes = [handle_p, ctypes.c_int]
    pam.pam_strerror.restype = ctypes.c_char_p
    pam.pam_getenvlist.argtypes = [handle_p]
    pam.pam_getenvlist.restype = ctypes.POINTER(ctypes.c_void_p)
    _libs = (pam, libc)
    return _libs


def _make_conv(libc: Any, on_message: Callable[[int, str], None]) -> Any:
    """A conversation function that answers no prompt and reports messages."""

    def conv(count: int, messages: Any, responses: Any, appdata: Any) -> int:
        try:
            return answer(count, messages, responses)
        except Exception:  # an exception must not cross back into C
            log.exception("the PAM conversation failed")
            return PAM_CONV_ERR

    def answer(count: int, messages: Any, responses: Any) -> int:
        responses[0] = None
        if count <= 0:
            return PAM_CONV_ERR
        for i in range(count):
            style = messages[i].contents.msg_style
            if style in (PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON):
                text = (messages[i].contents.msg or b"").decode(errors="replace")
                log.warning("a PAM module asked %r; sessions answer no prompts "
                            "(remove the module from the session's PAM service)", text)
                return PAM_CONV_ERR
        replies = libc.calloc(count, ctypes.sizeof(_Response))
        if not replies:
            return PAM_BUF_ERR
        for i in range(count):
            message = messages[i].contents
            on_message(message.msg_style, (message.msg or b"").decode(errors="replace"))
        responses[0] = ctypes.cast(replies, ctypes.POINTER(_Response))
        return PAM_SUCCESS

    return _CONV_FUNC(conv)


def _log_message(style: int, text: str) -> None:
    if style == PAM_ERROR_MSG:
        log.warning("PAM: %s", text)
    else:
        log.info("PAM: %s", text)


class PamSession:
    """One PAM transaction for ``user`` on ``service``, without authentication.

    Use as a context manager or call the steps yourself::

        with PamSession("rdscard", "alice", tty=":12", rhost="192.0.2.7") as pam:
            pam.open()           # acct_mgmt, setcred(ESTABLISH), open_session
            env = pam.getenv()
            ...
        # close(): close_session, setcred(DELETE), pam_end - same handle

    Every failure raises :class:`PamError` with the step and pam_strerror's text.
    """

    def __init__(self, service: str, user: str, *, tty: str = "", rhost: str = "",
                 xdisplay: str = "",
                 on_message: Callable[[int, str], None] = _log_message) -> None:
        self._pam, self._libc = _load()
        self._conv_func = _make_conv(self._libc, on_message)  # kept alive with the handle
        self._conv = _Conv(self._conv_func, None)
        self._handle = ctypes.c_void_p()
        self._status = PAM_SUCCESS
        self._credentials = False
        self._opened = False
        self.service = service
        self.user = user
        code = self._pam.pam_start(service.encode(), user.encode(), ctypes.byref(self._conv),
                                   ctypes.byref(self._handle))
        if code != PAM_SUCCESS or not self._handle:
            raise PamError("pam_start", code, f"cannot start PAM for service {service!r}")
        try:
            if tty:
                self.set_item(PAM_TTY, tty)
            if rhost:
                self.set_item(PAM_RHOST, rhost)
            if xdisplay:
                self.set_item(PAM_XDISPLAY, xdisplay)
        except PamError:
            self.end()
            raise

    def _check(self, step: str, code: int) -> None:
        self._status = code
        if code != PAM_SUCCESS:
            raise PamError(step, code, self.strerror(code))

    def strerror(self, code: int) -> str:
        """pam_strerror's text for ``code``."""
        text = self._pam.pam_strerror(self._handle, code)
        return text.decode(errors="replace") if text else f"unknown PAM error {code}"

    def set_item(self, item: int, value: str) -> None:
        """pam_set_item for a string item (PAM_TTY, PAM_RHOST, PAM_XDISPLAY...)."""
        buffer = ctypes.create_string_buffer(value.encode())
        self._check(f"pam_set_item({item})",
                    self._pam.pam_set_item(self._handle, item, ctypes.cast(buffer,
                                                                           ctypes.c_void_p)))

    def acct_mgmt(self) -> None:
        """pam_acct_mgmt: is the account allowed in now (expired, locked, access rules)?"""
        self._check("account check (pam_acct_mgmt)", self._pam.pam_acct_mgmt(self._handle, 0))

    def setcred(self, flags: int) -> None:
        """pam_setcred with PAM_ESTABLISH_CRED or PAM_DELETE_CRED."""
        self._check("pam_setcred", self._pam.pam_setcred(self._handle, flags))
        self._credentials = bool(flags & PAM_ESTABLISH_CRED)

    def open_session(self) -> None:
        """pam_open_session."""
        self._check("pam_open_session", self._pam.pam_open_session(self._handle, 0))
        self._opened = True

    def open(self) -> None:
        """Account check, credentials, then the session - in that order."""
        self.acct_mgmt()
        self.setcred(PAM_ESTABLISH_CRED)
        self.open_session()

    def getenv(self) -> dict[str, str]:
        """The environment the PAM modules set (pam_getenvlist), as a dict."""
        array = self._pam.pam_getenvlist(self._handle)
        env: dict[str, str] = {}
        if not array:
            return env
        i = 0
        while array[i]:
            entry = ctypes.string_at(array[i]).decode(errors="replace")
            name, sep, value = entry.partition("=")
            if sep:
                env[name] = value
            self._libc.free(array[i])
            i += 1
        self._libc.free(ctypes.cast(array, ctypes.c_void_p))
        return env

    def close(self) -> None:
        """Close the session, delete the credentials and end PAM; failures are logged.

        Safe to call more than once and after a failed :meth:`open`.
        """
        if not self._handle:
            return
        if self._opened:
            self._opened = False
            code = self._pam.pam_close_session(self._handle, 0)
            if code != PAM_SUCCESS:
                log.warning("PAM pam_close_session failed: %s", self.strerror(code))
            self._status = code
        if self._credentials:
            self._credentials = False
            code = self._pam.pam_setcred(self._handle, PAM_DELETE_CRED | PAM_SILENT)
            if code != PAM_SUCCESS:
                log.warning("PAM pam_setcred(DELETE) failed: %s", self.strerror(code))
        self.end()

    def end(self) -> None:
        """pam_end with the last status; the handle is unusable afterwards."""
        if self._handle:
            self._pam.pam_end(self._handle, self._status)
            self._handle = ctypes.c_void_p()

    def __enter__(self) -> PamSession:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
