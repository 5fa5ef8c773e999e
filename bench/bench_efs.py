"""Encrypted folder benchmark: unlock at sign-in over the redirected reader, and throughput.

Run as root (it loop-mounts an ext4 image made with ``-O encrypt`` and starts
an isolated pcscd, Xvfb and xfreerdp): ``.venv/bin/python bench/bench_efs.py
[--rounds 5] [--mib 64]``.

For RSA-2048 and P-256 cards: a real ``rdscard serve`` with ``[efs]
enabled`` signs the stock client in (``xfreerdp /smartcard
/smartcard-logon``) ``--rounds`` times; between rounds ``rdscard efs lock``
locks the folder so that every sign-in unlocks it. Printed from the
server's ``sign-in phases`` log line: the whole unlock and, inside it, the
card's private-key operation (one GENERAL AUTHENTICATE on 9D through the
client's redirected reader); the difference is rdscard's own cost (target
<= 2 ms). Baselines in the same run: ``openssl cms -decrypt`` of the same
envelope with a software key, and ``age -d`` of a 64-byte file (each a
process start plus the decryption). Then write and read throughput of a
file in the encrypted folder against a plain folder on the same filesystem.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.rdp.conftest import ServerProcess

from rdscard.card.piv import VirtualPivCard
from rdscard.card.state import CardState
from rdscard.efs import cms, fscrypt
from rdscard.logon.ntauth import NtAuthStore
from rdscard.pki.ca import CertProfile, RealmPki, generate_key, key_pem, pem
from rdscard.pki.piv_client import PivClient
from rdscard.pki.provision import Credentials, ProvisionOptions, provision
from rdscard.pki.transport import InProcessTransport
from rdscard.secret import Secret
from rdscard.testbed.cards import CardInThread, wait_for_port
from rdscard.testbed.pcscd import IsolatedPcscd
from rdscard.testbed.ports import free_tcp_port
from rdscard.xclient import VirtualScreen, XFreeRdp, wait_for

PIN = "24681357"
PHASES = re.compile(r"sign-in phases \(ms\): (.*)")


def efs(state: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "rdscard.cli.main", "efs", "--state-dir",
                    str(state), *args], check=True, capture_output=True)


def mount_image(root: Path) -> Path:
    image, mnt = root / "fs.img", root / "mnt"
    mnt.mkdir()
    with image.open("wb") as f:
        f.truncate(512 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "encrypt", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)
    return mnt


def unlock_rounds(root: Path, pki: RealmPki, mnt: Path, key_type: str,
                  rounds: int) -> dict[str, list[float]]:
    state = CardState.new(serial=0x7800, pin=PIN.encode(), puk=b"12345678")
    card = VirtualPivCard(state)
    provision(PivClient(InProcessTransport(card)), pki, "alice", Credentials(),
              ProvisionOptions(key_type=key_type))
    card_file = root / f"{key_type}.card"
    state.save(card_file)
    folder = mnt / f"root-{key_type}"
    folder.mkdir(mode=0o700)
    server_state = root / f"state-{key_type}"
    NtAuthStore.in_state_dir(server_state).add(pki.issuing_cert)
    efs(server_state, "enroll", "--user", "root", "--dir", str(folder),
        "--card-state", str(card_file))
    run_dir = Path(tempfile.mkdtemp(prefix="rdscard-run-", dir="/tmp"))
    run_dir.chmod(0o755)
    config = root / f"{key_type}.toml"
    config.write_text(
        f'[redirection]\nsocket_dir = "{run_dir}"\n[sessions]\nenabled = false\n'
        '[efs]\nenabled = true\n'
        f'[logon]\nmode = "local"\nroots = ["{pki.layout.root_cert}"]\n'
        '[logon.accounts]\n"alice@example.test" = "root"\n')
    results: dict[str, list[float]] = {}
    with IsolatedPcscd(root / f"pcscd-{key_type}", free_tcp_port(2)) as daemon:
        port = daemon.vpcd_ports()[0]
        wait_for_port("127.0.0.1", port)
        inserted = CardInThread(card, port)
        inserted.insert()
        time.sleep(1.0)
        srv = ServerProcess(server_state, ("--config", str(config)))
        try:
            for _ in range(rounds):
                efs(server_state, "lock", "--user", "root", "--force")
                before = srv.log.count("sign-in phases")
                with VirtualScreen(1088, 832) as screen:
                    client = XFreeRdp(screen, "127.0.0.1", srv.port, env=daemon.env,
                                      extra_args=["/smartcard", "/smartcard-logon",
                                                  f"/p:{PIN}"])
                    try:
                        if not wait_for(lambda n=before: srv.log.count("sign-in phases") > n,
                                        60):
                            raise RuntimeError("no sign-in:\n" + srv.log[-3000:])
                    finally:
                        client.close()
                phases = dict(item.split("=") for item in
                              PHASES.findall(srv.log)[-1].split(", "))
                unlock, card_op = float(phases["EFS unlock"]), \
                    float(phases["EFS card operation"])
                results.setdefault("unlock (whole step)", []).append(unlock)
                results.setdefault("  card's private-key operation", []).append(card_op)
                results.setdefault("  rdscard's own part", []).append(unlock - card_op)
                time.sleep(0.3)
        finally:
            srv.stop()
            inserted.remove()
    return results


def timed(argv: list[str], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        out.append((time.perf_counter() - started) * 1000)
    return out


def baselines(root: Path, pki: RealmPki, rounds: int) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {}
    for key_type in ("rsa2048", "p256"):
        key = generate_key(key_type)
        cert = pki.issue_user_certificate("bench", key.public_key(),
                                          profile=CertProfile.KEY_MANAGEMENT)
        (root / f"b-{key_type}.crt").write_bytes(pem(cert))
        (root / f"b-{key_type}.key").write_bytes(key_pem(key))
        (root / f"b-{key_type}.p7m").write_bytes(cms.seal(Secret(os.urandom(64)), [cert]))
        found[f"openssl cms -decrypt ({key_type}, software key)"] = timed(
            ["openssl", "cms", "-decrypt", "-binary", "-inform", "DER", "-in",
             str(root / f"b-{key_type}.p7m"), "-recip", str(root / f"b-{key_type}.crt"),
             "-inkey", str(root / f"b-{key_type}.key"), "-out", "/dev/null"], rounds)
    subprocess.run(["age-keygen", "-o", str(root / "age.key")], check=True,
                   capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(root / "age.key")], check=True,
                               capture_output=True, text=True).stdout.strip()
    (root / "mk").write_bytes(os.urandom(64))
    subprocess.run(["age", "-r", recipient, "-o", str(root / "mk.age"), str(root / "mk")],
                   check=True)
    found["age -d (X25519, software key)"] = timed(
        ["age", "-d", "-i", str(root / "age.key"), "-o", "/dev/null", str(root / "mk.age")],
        rounds)
    return found


def throughput(folder: Path, mib: int) -> tuple[float, float]:
    """Write (fsync) and read back (page cache dropped for the file) MiB/s."""
    path = folder / "big"
    block = os.urandom(1 << 20)
    started = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    for _ in range(mib):
        os.write(fd, block)
    os.fsync(fd)
    write = mib / (time.perf_counter() - started)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    started = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    while os.read(fd, 1 << 20):
        pass
    os.close(fd)
    read = mib / (time.perf_counter() - started)
    path.unlink()
    return write, read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mib", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir="/tmp") as work:
        root = Path(work)
        root.chmod(0o755)
        pki = RealmPki.create(root / "pki", "EXAMPLE.TEST", "example.test")
        mnt = mount_image(root)
        try:
            table: dict[str, list[float]] = {}
            for key_type in ("rsa2048", "p256"):
                for name, values in unlock_rounds(root, pki, mnt, key_type,
                                                  args.rounds).items():
                    table[f"{key_type}: {name}"] = values
            table.update(baselines(root, pki, args.rounds))
            print(f"\nunlock at sign-in over the redirected reader, {args.rounds} rounds, ms")
            print(f"{'what':<58} {'median':>8} {'min':>8} {'max':>8}")
            for name, values in table.items():
                print(f"{name:<58} {statistics.median(values):8.2f} {min(values):8.2f} "
                      f"{max(values):8.2f}")
            folder = mnt / "root-rsa2048"
            with Secret(os.urandom(64)) as master:
                identifier = fscrypt.key_identifier(master)
                encrypted = mnt / "enc"
                encrypted.mkdir()
                fscrypt.set_policy(encrypted, identifier)
                fscrypt.add_key(encrypted, master)
            plain = mnt / "plain"
            plain.mkdir()
            print(f"\nthroughput of a {args.mib} MiB file on the same ext4 image, MiB/s")
            print(f"{'folder':<20} {'write+fsync':>12} {'read':>10}")
            for name, where in (("plain", plain), ("encrypted", encrypted)):
                w, r = throughput(where, args.mib)
                print(f"{name:<20} {w:12.0f} {r:10.0f}")
            fscrypt.remove_key(encrypted, identifier)
            del folder
        finally:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


if __name__ == "__main__":
    main()
