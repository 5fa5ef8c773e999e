"""The logon service's side of card-bound encryption: keys added at sign-in, removed at the end.

One :class:`EfsKeyring` per server (in the root monitor). A sign-in of an
enrolled account runs an :class:`EfsSignInStep` inside the logon service:

- before the PIN (:meth:`EfsSignInStep.before_pin`): the card's
  key-management certificate (PIV slot 9D, SP 800-73-4) is read and matched
  to a recipient of the account's envelope (RFC 5652 6.2); a card without
  one, or whose certificate is no recipient, is refused before any PIN try;
- after the PIN and proof of possession, in the same card session
  (:meth:`EfsSignInStep.after_pin`): one GENERAL AUTHENTICATE on 9D, the
  rest of the CMS unwrap in software, ``FS_IOC_ADD_ENCRYPTION_KEY``, the key
  wiped. An account whose key is in the filesystem already (another of its
  sessions holds it) needs no card operation.

Each session that signed in holds the account's key; when the last one
ends, or is locked by the card removal policy, the key is removed
(``FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS``); while files are still open the
kernel reports FILES_BUSY and the removal is tried again until they close,
with a log line each way. A disconnected session keeps its claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from rdscard.efs import cms, fscrypt
from rdscard.efs.cms import EnvelopeError
from rdscard.efs.keywrap import UnwrapError
from rdscard.efs.operators import KEY_MANAGEMENT, CardKeyOperator
from rdscard.efs.store import Enrollment, EnvelopeStore, StoreError
from rdscard.errors import ProtocolError
from rdscard.logon.refusal import ReasonCode, SignInRefused
from rdscard.pki.piv_client import PivClient, PivError
from rdscard.pki.transport import TransportError
from rdscard.secret import Secret

log = logging.getLogger("rdscard.efs")


@dataclass
class _Account:
    enrollment: Enrollment
    sessions: set[int] = field(default_factory=set)
    removing: bool = False


class EfsKeyring:
    """Which sessions hold which account's key; adds and removes the keys."""

    def __init__(self, store: EnvelopeStore, *, busy_retry: float = 2.0) -> None:
        self.store = store
        self.busy_retry = busy_retry
        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}
        #: card operations done for unlocks (for tests and benchmarks)
        self.card_operations = 0

    def step(self, session_id: int) -> EfsSignInStep:
        """The encrypted-folder step of one sign-in on ``session_id``."""
        return EfsSignInStep(self, session_id)

    def holders(self, account: str) -> set[int]:
        with self._lock:
            entry = self._accounts.get(account)
            return set(entry.sessions) if entry is not None else set()

    # -- called from the sign-in's worker thread ------------------------------------------------
    def _hold_if_present(self, enrollment: Enrollment, session_id: int) -> bool:
        with self._lock:
            entry = self._accounts.get(enrollment.account)
            if entry is None or not entry.sessions:
                return False
            try:
                status = fscrypt.key_status(enrollment.directory, enrollment.key_identifier)
            except fscrypt.FscryptError:
                return False
            if status is not fscrypt.KeyStatus.PRESENT:
                return False
            entry.sessions.add(session_id)
            return True

    def _add(self, enrollment: Enrollment, master: Secret, session_id: int) -> None:
        with self._lock:
            try:
                fscrypt.add_key(enrollment.directory, master)
            finally:
                master.wipe()
            entry = self._accounts.setdefault(enrollment.account, _Account(enrollment))
            entry.enrollment = enrollment
            entry.sessions.add(session_id)

    # -- called from the event loop ----------------------------------------------------------
    def release(self, session_id: int, why: str) -> None:
        """``session_id`` no longer holds a key; the last holder's end locks the folder."""
        with self._lock:
            found = [(name, e) for name, e in self._accounts.items()
                     if session_id in e.sessions]
            for _name, entry in found:
                entry.sessions.discard(session_id)
        for name, entry in found:
            if not entry.sessions and not entry.removing:
                entry.removing = True
                log.info("[session %d] %s: locking the encrypted folder of %s (%s)",
                         session_id, why, name, entry.enrollment.directory)
                asyncio.get_running_loop().create_task(self._remove(name, entry))

    def move(self, from_session: int, to_session: int) -> None:
        """A new sign-in took an old session over: its claim moves with it."""
        with self._lock:
            for entry in self._accounts.values():
                if from_session in entry.sessions:
                    entry.sessions.discard(from_session)
                    entry.sessions.add(to_session)

    def _try_remove(self, name: str, entry: _Account) -> fscrypt.Removal | None:
        """One removal attempt (worker thread); None when a session holds the key again."""
        with self._lock:
            if entry.sessions:
                return None
            enrollment = entry.enrollment
            return fscrypt.remove_key(enrollment.directory, enrollment.key_identifier)

    async def _remove(self, name: str, entry: _Account) -> None:
        started = time.monotonic()
        announced = False
        directory = entry.enrollment.directory
        try:
            while True:
                try:
                    removal = await asyncio.to_thread(self._try_remove, name, entry)
                except fscrypt.FscryptError as exc:
                    log.error("the encrypted folder of %s could not be locked: %s", name, exc)
                    return
                if removal is None:
                    log.info("the encrypted folder of %s stays open: %s signed in again",
                             name, name)
                    return
                if not removal.files_busy:
                    if announced:
                        log.info("the encrypted folder of %s (%s) is locked: its last files "
                                 "closed after %.1f s", name, directory,
                                 time.monotonic() - started)
                    else:
                        log.info("the encrypted folder of %s (%s) is locked", name, directory)
                    return
                if not announced:
                    log.warning("files are still open in the encrypted folder of %s (%s): "
                                "they stay readable until closed; trying again every %.1f s",
                                name, directory, self.busy_retry)
                    announced = True
                await asyncio.sleep(self.busy_retry)
        finally:
            entry.removing = False

    def lock_all(self) -> None:
        """Server shutdown: every key held goes now (files still open: logged)."""
        with self._lock:
            entries = list(self._accounts.items())
            for _name, entry in entries:
                entry.sessions.clear()
        for name, entry in entries:
            with contextlib.suppress(fscrypt.FscryptError):
                removal = fscrypt.remove_key(entry.enrollment.directory,
                                             entry.enrollment.key_identifier)
                if removal.files_busy:
                    log.warning("files are still open in the encrypted folder of %s: it "
                                "locks when they close", name)


@dataclass
class _Prepared:
    enrollment: Enrollment
    envelope: cms.Envelope
    recipient: cms.Recipient
    certificate: x509.Certificate


class EfsSignInStep:
    """The encrypted folder's part of one sign-in (runs in the sign-in's worker thread)."""

    def __init__(self, keyring: EfsKeyring, session_id: int) -> None:
        self.keyring = keyring
        self.session_id = session_id
        self._prepared: _Prepared | None = None
        self.card_operation = False
        #: seconds of the card's private-key operation in this unlock (0: none was needed)
        self.card_seconds = 0.0

    def before_pin(self, client: PivClient, account: str) -> None:
        """Read 9D and find its recipient; refuse (no PIN try spent) when it has none."""
        try:
            enrollment = self.keyring.store.load(account)
        except StoreError as exc:
            raise SignInRefused(ReasonCode.EFS_UNLOCK_FAILED,
                                f"your encrypted folder cannot be opened ({exc}): ask your "
                                "administrator") from None
        if enrollment is None:
            return
        try:
            certificate = client.read_certificate(KEY_MANAGEMENT)
        except (PivError, ProtocolError, TransportError) as exc:
            raise SignInRefused(ReasonCode.CARD_ERROR,
                                f"the card's key-management certificate cannot be read "
                                f"({exc}): insert the card again") from None
        if certificate is None:
            raise SignInRefused(
                ReasonCode.EFS_NO_KEY_CERTIFICATE,
                f"this card has no key-management certificate (PIV slot 9D), which opens the "
                f"encrypted folder of {account}: sign in with the card it was enrolled for")
        try:
            envelope = cms.parse_envelope(enrollment.envelope)
        except EnvelopeError as exc:
            raise SignInRefused(ReasonCode.EFS_UNLOCK_FAILED,
                                f"the envelope of your encrypted folder is damaged ({exc}): "
                                "ask your administrator to recover it") from None
        recipient = envelope.recipient_for(certificate)
        if recipient is None:
            raise SignInRefused(
                ReasonCode.EFS_NOT_RECIPIENT,
                f"this card (key-management certificate serial {certificate.serial_number:X}) "
                f"cannot open the encrypted folder of {account}: sign in with the card it was "
                "enrolled for, or ask your administrator to rekey it (rdscard efs rekey)")
        self._prepared = _Prepared(enrollment, envelope, recipient, certificate)

    def after_pin(self, client: PivClient) -> None:
        """Unlock with one private-key operation of the card, in this card session."""
        prepared = self._prepared
        if prepared is None:
            return
        keyring = self.keyring
        if keyring._hold_if_present(prepared.enrollment, self.session_id):
            return
        public_key = prepared.certificate.public_key()
        assert isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
        operator = CardKeyOperator(client, public_key)
        try:
            master = cms.open_envelope(prepared.envelope, prepared.recipient, operator)
        except (PivError, ProtocolError, TransportError) as exc:
            raise SignInRefused(
                ReasonCode.CARD_ERROR,
                f"the card stopped answering while your encrypted folder was being opened "
                f"({exc}): insert it again and sign in") from None
        except UnwrapError as exc:
            raise SignInRefused(ReasonCode.EFS_UNLOCK_FAILED,
                                f"your encrypted folder's key does not open with this card "
                                f"({exc}): ask your administrator") from None
        finally:
            self.card_operation = operator.operations > 0
            self.card_seconds = operator.seconds
            keyring.card_operations += operator.operations
        enrollment = prepared.enrollment
        if len(master) != fscrypt.MASTER_KEY_SIZE or \
                fscrypt.key_identifier(master) != enrollment.key_identifier:
            master.wipe()
            raise SignInRefused(ReasonCode.EFS_UNLOCK_FAILED,
                                "the envelope of your encrypted folder holds another key "
                                "(altered?): ask your administrator to recover it")
        try:
            keyring._add(enrollment, master, self.session_id)
        except fscrypt.FscryptError as exc:
            raise SignInRefused(ReasonCode.EFS_UNLOCK_FAILED,
                                f"your encrypted folder cannot be opened: {exc}") from None

    def undo(self) -> None:
        """A later step refused the sign-in: this session holds nothing (and a key it alone
        added goes again)."""
        if self._prepared is None:
            return
        keyring = self.keyring
        with keyring._lock:
            entry = keyring._accounts.get(self._prepared.enrollment.account)
            if entry is None or self.session_id not in entry.sessions:
                return
            entry.sessions.discard(self.session_id)
            if not entry.sessions:
                enrollment = entry.enrollment
                with contextlib.suppress(fscrypt.FscryptError):
                    fscrypt.remove_key(enrollment.directory, enrollment.key_identifier)
