"""Virtual PIV card benchmark: time per command in process, and through pcscd + vpcd.

In process (no I/O), for the PIV card:

- SELECT of the PIV AID;
- GET DATA of a 1.5 KB certificate object, as a host with short APDUs
  reads it (first part with 61xx, then GET RESPONSE until 90 00);
- RSA-2048 signature: VERIFY, GENERAL AUTHENTICATE chained in two APDUs,
  GET RESPONSE (the raw private operation dominates);
- ECDSA P-256 signature, for comparison.

With ``--pcsc`` (needs root, pcscd and the vpcd driver), the same SELECT and
certificate read through an isolated pcscd with the card served over vpcd,
next to a trivial card that answers 90 00, so the ratio shows what the PIV
card adds to the transport.

Usage: .venv/bin/python bench/bench_card.py [--rounds 2000] [--pcsc]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState, SlotKey
from rdscard.card.vpcd import TrivialCard, serve_card_in_thread
from rdscard.pdu.apdu import CommandApdu
from rdscard.pdu.tlv import tlv

SELECT = bytes.fromhex("00A4040009A0000003080000100000")
GET_CERT = bytes.fromhex("00CB3FFF055C035FC10500")
VERIFY = bytes.fromhex("0020008008313233343536FFFF")


def make_card() -> VirtualPivCard:
    state = CardState.new(serial=1)
    rsa_key = rsa.generate_private_key(65537, 2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    for ref, alg, key in ((0x9A, 0x07, rsa_key), (0x9E, 0x11, ec_key)):
        der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        state.keys[ref] = SlotKey(alg, der)
    cert = bytes(1500)
    state.data_objects[0x5FC105] = tlv(0x70, cert) + tlv(0x71, b"\x00") + tlv(0xFE)
    card = VirtualPivCard(state)
    card.power_on()
    card.transmit(SELECT)
    return card


def exchange(transmit: Callable[[bytes], bytes], apdu: bytes) -> tuple[bytes, int]:
    """One command with GET RESPONSE collection, as a short-APDU host does it."""
    out = transmit(apdu)
    body, sw = out[:-2], int.from_bytes(out[-2:], "big")
    while sw >> 8 == 0x61:
        out = transmit(bytes((0x00, 0xC0, 0x00, 0x00, sw & 0xFF)))
        body += out[:-2]
        sw = int.from_bytes(out[-2:], "big")
    if sw != 0x9000:
        raise SystemExit(f"unexpected status {sw:04X} for {apdu[:4].hex()}")
    return body, sw


def rsa_sign(transmit: Callable[[bytes], bytes]) -> None:
    transmit(VERIFY)
    # an EMSA-PKCS1-v1_5 block over SHA-256, as pkcs11-tool and kinit send it
    info = bytes.fromhex("3031300d060960864801650304020105000420") + bytes(32)
    block = b"\x00\x01" + b"\xff" * (256 - 3 - len(info)) + b"\x00" + info
    template = tlv(0x7C, tlv(0x82) + tlv(0x81, block))
    transmit(CommandApdu(0x10, 0x87, 0x07, 0x9A, template[:255]).encode())
    exchange(transmit, CommandApdu(0x00, 0x87, 0x07, 0x9A, template[255:], 256).encode())


def ecdsa_sign(transmit: Callable[[bytes], bytes]) -> None:
    template = tlv(0x7C, tlv(0x82) + tlv(0x81, hashlib.sha256(b"x").digest()))
    exchange(transmit, CommandApdu(0x00, 0x87, 0x11, 0x9E, template, 256).encode())


def timed(label: str, rounds: int, action: Callable[[], object]) -> None:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        action()
        samples.append(time.perf_counter_ns() - start)
    samples.sort()
    p50 = statistics.median(samples) / 1000
    p99 = samples[int(len(samples) * 0.99) - 1] / 1000
    print(f"  {label:<48} p50 {p50:9.1f} us   p99 {p99:9.1f} us   ({rounds} rounds)")


def in_process(rounds: int) -> None:
    card = make_card()
    t = card.transmit
    body, _ = exchange(t, GET_CERT)
    print(f"in process (certificate object {len(body)} bytes with its 53 container):")
    timed("SELECT PIV AID", rounds, lambda: t(SELECT))
    timed("GET DATA 9A certificate (+ GET RESPONSE x5)", rounds, lambda: exchange(t, GET_CERT))
    timed("RSA-2048 sign (VERIFY + chained GA + GET RESP)", max(rounds // 10, 50),
          lambda: rsa_sign(t))
    timed("ECDSA P-256 sign (9E, GA)", max(rounds // 10, 50), lambda: ecdsa_sign(t))


def _connect(reader: object) -> object:
    """Connect once pcscd has seen the card (it polls the vpcd reader)."""
    from smartcard.Exceptions import SmartcardException

    deadline = time.monotonic() + 10
    while True:
        connection = reader.createConnection()  # type: ignore[attr-defined]
        try:
            connection.connect()
            return connection
        except SmartcardException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def through_pcscd(rounds: int) -> None:
    from rdscard.testbed.pcscd import IsolatedPcscd
    from rdscard.testbed.ports import free_tcp_port

    with tempfile.TemporaryDirectory() as tmp:
        port = free_tcp_port(2)
        with IsolatedPcscd(Path(tmp), port) as daemon:
            os.environ.update(daemon.env)  # before libpcsclite is loaded
            from smartcard.System import readers

            for name, card in (("trivial card", TrivialCard()), ("PIV card", make_card())):
                thread, removed = serve_card_in_thread(card, "127.0.0.1", port)
                connection = _connect(readers()[0])

                def t(apdu: bytes, c: object = connection) -> bytes:
                    data, sw1, sw2 = c.transmit(list(apdu))  # type: ignore[attr-defined]
                    return bytes(data) + bytes((sw1, sw2))

                print(f"through pcscd + vpcd ({name}):")
                timed("SELECT PIV AID", rounds, lambda t=t: t(SELECT))  # type: ignore[misc]
                if name == "PIV card":
                    timed("GET DATA 9A certificate (+ GET RESPONSE x5)", rounds // 4,
                          lambda t=t: exchange(t, GET_CERT))  # type: ignore[misc]
                    timed("RSA-2048 sign", max(rounds // 20, 50),
                          lambda t=t: rsa_sign(t))  # type: ignore[misc]
                connection.disconnect()  # type: ignore[attr-defined]
                connection.release()  # type: ignore[attr-defined]
                removed.set()
                thread.join(5)
                time.sleep(0.5)  # let pcscd notice the removal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--pcsc", action="store_true", help="also measure through pcscd + vpcd")
    args = parser.parse_args()
    in_process(args.rounds)
    if args.pcsc:
        through_pcscd(args.rounds)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
