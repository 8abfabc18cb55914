#!/usr/bin/env python3
"""Checks Parapet's tamper-evident audit log with implementations that share no code with it.

    verify_audit_log.py [--server URL] [--token TOKEN] [--public-key VKEY] [--size N]
                        [--min-size N] [--save DIR]
    verify_audit_log.py --from-dir DIR [--public-key VKEY] [--size N] [--min-size N]
    verify_audit_log.py --check-deps

The server and token default to the environment variables PARAPET_SERVER and PARAPET_TOKEN.
With --save, every response read from the server is also written to DIR; --from-dir then
verifies those files again without a server (one file per request, named after its path).

What is checked, and by what:
  * the checkpoint (C2SP tlog-checkpoint, a C2SP signed note): parsed here from the spec; its
    Ed25519 signature is verified by `cryptography` with the key of the verifier key
    `<name>+<hex key id>+<base64(0x01 || key)>`, whose key id is recomputed here;
  * every record 0..size-1 (/api/v1/audit/proofs/inclusion): its leaf hash
    SHA-256(0x00 || entry) is recomputed, the record is appended to a `pymerkle` tree (RFC 9162
    structure and hashing), the proof must equal the one pymerkle generates, and pymerkle's
    verify_inclusion must accept it against the signed root;
  * the signed root equals pymerkle's root of the records, and so does the root of every
    earlier signed checkpoint (/api/v1/audit/checkpoints): all of them are prefixes of one log;
  * consistency proofs (/api/v1/audit/proofs/consistency) from sizes 1, size/2, size-1 and from
    every earlier signed checkpoint to `size`, by the algorithm of RFC 9162 section 2.1.4.2 as
    written below (pymerkle's consistency proofs have another layout than RFC 9162's);
  * the C2SP tlog-tiles hash tiles: level 0 holds the leaf hashes, level 1 the roots of full
    256-leaf subtrees (computed by pymerkle);
  * the export (/api/v1/audit/entries?proofs=true) gives the same records and proofs;
  * negative checks: a flipped bit in a proof hash, in the root, in the entry or in the
    signature, and a changed note text, must each be rejected by the same code.

Exit status: 0 when everything verifies (one summary line), 1 when something does not (the
first failure is named), 2 for a usage error, 3 when a required package is missing.
"""

import argparse
import base64
import hashlib
import http.client
import importlib.metadata
import json
import os
import re
import sys
import urllib.parse

try:
    import cryptography
    import pymerkle
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from pymerkle import InclusionProof, InmemoryTree, InvalidProof, verify_inclusion
except ImportError as err:
    sys.stderr.write(
        f"verify_audit_log.py: missing Python package: {err.name or err}\n"
        "install the pinned packages: python3 -m venv target/pyenv && "
        "target/pyenv/bin/pip install -r tests/independent/requirements.txt "
        "(scripts/test does this)\n"
    )
    sys.exit(3)

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
HASH_SIZE = 32
EM_DASH = "\u2014"


class Failure(Exception):
    """Something did not verify."""


def check(cond, message):
    if not cond:
        raise Failure(message)


# ---------------------------------------------------------------- hashing (RFC 9162 section 2.1)


def leaf_hash(entry):
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def b64decode_hash(text, what):
    try:
        raw = base64.b64decode(text, validate=True)
    except (ValueError, TypeError) as err:
        raise Failure(f"{what}: not base64: {text!r}") from err
    check(len(raw) == HASH_SIZE, f"{what}: {len(raw)} bytes, not {HASH_SIZE}")
    return raw


def flip_bit(data, bit=0):
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def verify_consistency_rfc9162(first, second, first_hash, second_hash, path):
    """RFC 9162 section 2.1.4.2; True when `path` proves that the tree of `second` leaves and
    root `second_hash` extends the tree of `first` leaves and root `first_hash`."""
    if not 0 < first <= second:
        return False
    if first == second:
        return not path and first_hash == second_hash
    if not path:
        return False
    if first & (first - 1) == 0:
        path = [first_hash] + list(path)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0


# ---------------------------------------------------------------- signed notes (C2SP)


def valid_key_name(name):
    return bool(name) and not any(c.isspace() or c == "+" or ord(c) < 0x20 for c in name)


class VerifierKey:
    """`<name>+<hex key id>+<base64(0x01 || 32-byte Ed25519 public key)>`."""

    def __init__(self, vkey):
        parts = vkey.strip().split("+", 2)
        check(len(parts) == 3, f"verifier key {vkey!r}: not name+id+key")
        name, key_id, key = parts
        check(valid_key_name(name), f"verifier key: bad key name {name!r}")
        check(
            re.fullmatch(r"[0-9a-f]{8}", key_id) is not None, f"verifier key: bad key id {key_id!r}"
        )
        try:
            raw = base64.b64decode(key, validate=True)
        except ValueError as err:
            raise Failure(f"verifier key: key is not base64: {key!r}") from err
        check(len(raw) == 33 and raw[0] == 0x01, "verifier key: not 0x01 followed by 32 bytes")
        self.name = name
        self.public_key = raw[1:]
        expected = hashlib.sha256(name.encode() + b"\n\x01" + self.public_key).digest()[:4]
        check(
            expected.hex() == key_id,
            f"verifier key: key id {key_id} does not match the key ({expected.hex()})",
        )
        self.key_id = expected
        self.ed25519 = Ed25519PublicKey.from_public_bytes(self.public_key)

    def signature_verifies(self, text, signature):
        try:
            self.ed25519.verify(signature, text.encode("utf-8"))
            return True
        except InvalidSignature:
            return False


def split_note(note):
    """A signed note: (text with its final newline, [(key name, 4-byte id, signature)])."""
    check(note.endswith("\n"), "note: does not end with a newline")
    check(not any(ord(c) < 0x20 and c != "\n" for c in note), "note: control character")
    cut = note.rfind("\n\n")
    check(cut >= 0, "note: no blank line before the signatures")
    text, sig_block = note[: cut + 1], note[cut + 2 :]
    check(sig_block, "note: no signature line")
    sigs = []
    for line in sig_block[:-1].split("\n"):
        m = re.fullmatch(EM_DASH + r" (\S+) ([A-Za-z0-9+/=]+)", line)
        check(m is not None, f"note: bad signature line {line!r}")
        name, blob = m.group(1), base64.b64decode(m.group(2), validate=True)
        check(valid_key_name(name), f"note: bad key name {name!r}")
        check(len(blob) > 4, "note: signature too short")
        sigs.append((name, blob[:4], blob[4:]))
    return text, sigs


def open_checkpoint(note, vkey):
    """Verifies a signed checkpoint note with `vkey` and returns (origin, size, root, text,
    signature)."""
    text, sigs = split_note(note)
    mine = [s for s in sigs if s[0] == vkey.name and s[1] == vkey.key_id]
    check(mine, f"checkpoint: no signature by {vkey.name}+{vkey.key_id.hex()}")
    for _, _, sig in mine:
        check(len(sig) == 64, "checkpoint: Ed25519 signature is not 64 bytes")
        check(
            vkey.signature_verifies(text, sig), "checkpoint: the Ed25519 signature does not verify"
        )
    lines = text[:-1].split("\n")
    check(len(lines) >= 3, "checkpoint: fewer than three lines")
    origin, size, root = lines[0], lines[1], lines[2]
    check(origin != "", "checkpoint: empty origin")
    check(re.fullmatch(r"0|[1-9][0-9]*", size) is not None, f"checkpoint: bad size {size!r}")
    check(all(lines[3:]), "checkpoint: empty extension line")
    return origin, int(size), b64decode_hash(root, "checkpoint root"), text, mine[0][2]


# ---------------------------------------------------------------- C2SP tlog-tiles


def tile_index_path(n):
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))


def tile_path(level, n, width):
    path = f"tile/{level}/{tile_index_path(n)}"
    return path if width == TILE_WIDTH else f"{path}.p/{width}"


# ---------------------------------------------------------------- where responses come from


def file_name(path):
    return re.sub(r"[^A-Za-z0-9._-]", "_", path.lstrip("/"))


class HttpSource:
    def __init__(self, url, token, save_dir):
        parsed = urllib.parse.urlsplit(url)
        check(parsed.scheme in ("http", "https") and parsed.hostname, f"bad server URL {url!r}")
        self.scheme, self.netloc = parsed.scheme, parsed.netloc
        self.prefix = parsed.path.rstrip("/")
        self.token = token
        self.save_dir = save_dir
        self.conn = None
        self.requests = 0

    def _connect(self):
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(self.netloc, timeout=30)

    def get(self, path):
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = self._connect()
            try:
                self.conn.request("GET", self.prefix + path, headers=headers)
                res = self.conn.getresponse()
                body = res.read()
                break
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        self.requests += 1
        if res.status == 200 and self.save_dir:
            with open(os.path.join(self.save_dir, file_name(path)), "wb") as f:
                f.write(body)
        return res.status, body


class DirSource:
    def __init__(self, directory):
        check(os.path.isdir(directory), f"{directory} is not a directory")
        self.dir = directory
        self.requests = 0

    def get(self, path):
        self.requests += 1
        try:
            with open(os.path.join(self.dir, file_name(path)), "rb") as f:
                return 200, f.read()
        except FileNotFoundError:
            return 404, b""


def fetch(src, path):
    status, body = src.get(path)
    check(status == 200, f"GET {path}: HTTP {status}: {body[:300].decode('utf-8', 'replace')}")
    return body


def fetch_text(src, path):
    try:
        return fetch(src, path).decode("utf-8")
    except UnicodeDecodeError as err:
        raise Failure(f"GET {path}: not UTF-8") from err


def fetch_json(src, path):
    try:
        return json.loads(fetch(src, path))
    except ValueError as err:
        raise Failure(f"GET {path}: not JSON") from err


# ---------------------------------------------------------------- the checks


def must_reject(what, accepted, rejections):
    """A negative check: `accepted()` must be False (or raise InvalidProof)."""
    try:
        ok = accepted()
    except InvalidProof:
        ok = False
    check(not ok, f"negative check failed: {what} was accepted")
    rejections.append(what)


def pymerkle_inclusion_ok(leaf, root, index, size, rule, proof):
    """pymerkle's verify_inclusion of an RFC 9162 audit path (leaf `index`, 0-based)."""
    p = InclusionProof("sha256", True, size, index + 1, rule, [leaf] + list(proof))
    verify_inclusion(leaf, root, p, index=index + 1, size=size, algorithm="sha256")
    return True


def verify(src, pinned_vkey, want_size, min_size):
    rejections = []

    # The log's key.
    served = fetch_text(src, "/api/v1/audit/public-key").strip()
    if pinned_vkey:
        check(served == pinned_vkey.strip(), f"the served key {served} is not the pinned one")
    vkey = VerifierKey(pinned_vkey or served)

    # The checkpoint.
    path = "/api/v1/audit/checkpoint" + (f"?size={want_size}" if want_size else "")
    note = fetch_text(src, path)
    origin, size, root, text, sig = open_checkpoint(note, vkey)
    check(origin == vkey.name, f"checkpoint origin {origin!r} is not the key name {vkey.name!r}")
    check(want_size is None or size == want_size, f"asked for size {want_size}, got {size}")
    check(
        size >= max(min_size, 1), f"checkpoint size {size} is below the required {max(min_size, 1)}"
    )
    must_reject(
        "a flipped bit in the signature",
        lambda: vkey.signature_verifies(text, flip_bit(sig)),
        rejections,
    )
    forged = text.replace(f"\n{size}\n", f"\n{size + 1}\n", 1)
    must_reject(
        "a checkpoint text with another size",
        lambda: vkey.signature_verifies(forged, sig),
        rejections,
    )

    # Every signed checkpoint up to `size`.
    signed = {}
    after = 0
    while True:
        page = fetch_json(src, f"/api/v1/audit/checkpoints?after={after}&limit=1000")
        check(isinstance(page, list), "/api/v1/audit/checkpoints: not a list")
        for cp in page:
            o, s, r, _, _ = open_checkpoint(cp["checkpoint"], vkey)
            check(o == origin, f"checkpoint of size {s}: origin {o!r}")
            check(cp["size"] == s, f"checkpoint listed as size {cp['size']} has size {s}")
            check(s > after, f"checkpoints out of order at size {s}")
            after = s
            if s <= size:
                signed[s] = r
        if len(page) < 1000 or after >= size:
            break
    check(
        signed.get(size) == root,
        f"the checkpoint list has no checkpoint {size} with root {root.hex()}",
    )

    # Every record, its leaf hash and its inclusion proof; the records in a pymerkle tree.
    tree = InmemoryTree(algorithm="sha256")
    entries, leaves, proofs = [], [], []
    for i in range(size):
        p = fetch_json(src, f"/api/v1/audit/proofs/inclusion?index={i}&size={size}")
        check(
            p.get("index") == i and p.get("size") == size,
            f"inclusion proof {i}: index/size {p.get('index')}/{p.get('size')}",
        )
        entry = p["entry"].encode("utf-8")
        leaf = leaf_hash(entry)
        check(
            b64decode_hash(p["leaf_hash"], f"record {i} leaf hash") == leaf,
            f"record {i}: the served leaf hash is not SHA-256(0x00 || entry)",
        )
        try:
            record = json.loads(entry)
        except ValueError as err:
            raise Failure(f"record {i}: the entry is not JSON") from err
        check(record.get("id") == i, f"record {i}: its id is {record.get('id')!r}")
        tree.append_entry(entry)
        check(tree.get_leaf(i + 1) == leaf, f"record {i}: pymerkle hashes it to another leaf")
        entries.append(entry)
        leaves.append(leaf)
        proofs.append([b64decode_hash(h, f"inclusion proof {i}") for h in p["proof"]])

    # First each record against the signed root (this names a changed record), then the proofs
    # against those pymerkle generates, then the roots.
    expected = [tree.prove_inclusion(i + 1, size) for i in range(size)]
    for i in range(size):
        try:
            pymerkle_inclusion_ok(leaves[i], root, i, size, expected[i].rule, proofs[i])
        except InvalidProof as err:
            raise Failure(f"record {i}: pymerkle rejects its inclusion proof: {err}") from err
    for i in range(size):
        check(
            expected[i].path[1:] == proofs[i],
            f"record {i}: its inclusion proof differs from pymerkle's",
        )
    check(
        tree.get_root(size) == root,
        f"pymerkle's root of the {size} records is {tree.get_root(size).hex()}, "
        f"the signed root is {root.hex()}",
    )
    for s, r in sorted(signed.items()):
        check(
            tree.get_root(s) == r,
            f"the signed checkpoint of size {s} has root {r.hex()}, "
            f"pymerkle computes {tree.get_root(s).hex()} from the records",
        )

    # Negative checks on one proof with a non-empty path.
    i = next((k for k in range(size // 2, size) if proofs[k]), None)
    if i is not None:
        rule = expected[i].rule
        for j in range(len(proofs[i])):
            bad = list(proofs[i])
            bad[j] = flip_bit(bad[j], (8 * j + 3) % 256)
            must_reject(
                f"inclusion proof {i} with a flipped bit in hash {j}",
                lambda bad=bad: pymerkle_inclusion_ok(leaves[i], root, i, size, rule, bad),
                rejections,
            )
        must_reject(
            f"inclusion proof {i} against a flipped root",
            lambda: pymerkle_inclusion_ok(leaves[i], flip_bit(root, 77), i, size, rule, proofs[i]),
            rejections,
        )
        must_reject(
            f"inclusion proof {i} of a changed entry",
            lambda: pymerkle_inclusion_ok(
                leaf_hash(entries[i] + b" "), root, i, size, rule, proofs[i]
            ),
            rejections,
        )
        must_reject(
            f"inclusion proof {i} without its last hash",
            lambda: pymerkle_inclusion_ok(leaves[i], root, i, size, rule, proofs[i][:-1]),
            rejections,
        )

    # Consistency proofs: from 1, size/2, size-1 (roots computed by pymerkle) and from every
    # earlier signed checkpoint (signed roots) to `size`.
    froms = {a: tree.get_root(a) for a in (1, size // 2, size - 1) if 0 < a < size}
    by_checkpoint = set()
    for a in sorted(signed):
        if 0 < a < size:
            froms[a] = signed[a]
            by_checkpoint.add(a)
    consistency = {}
    for a, root_a in sorted(froms.items()):
        c = fetch_json(src, f"/api/v1/audit/proofs/consistency?from={a}&to={size}")
        check(
            c.get("from") == a and c.get("to") == size,
            f"consistency proof {a}->{size}: from/to {c.get('from')}/{c.get('to')}",
        )
        path = [b64decode_hash(h, f"consistency proof {a}->{size}") for h in c["proof"]]
        check(
            verify_consistency_rfc9162(a, size, root_a, root, path),
            f"consistency proof {a}->{size} does not verify",
        )
        consistency[a] = path
    # The checkpoint of exactly a size, for the real checkpoint sizes nearest 1, size/2, size-1.
    for target in (1, size // 2, size - 1):
        if not by_checkpoint:
            break
        a = min(by_checkpoint, key=lambda s: (abs(s - target), s))
        o, s, r, _, _ = open_checkpoint(fetch_text(src, f"/api/v1/audit/checkpoint?size={a}"), vkey)
        check(
            (o, s, r) == (origin, a, signed[a]),
            f"/api/v1/audit/checkpoint?size={a} is not the listed checkpoint",
        )
    a = next((k for k in sorted(consistency) if len(consistency[k]) > 1), None)
    if a is not None:
        path = consistency[a]
        for j in range(len(path)):
            bad = list(path)
            bad[j] = flip_bit(bad[j], (8 * j + 5) % 256)
            must_reject(
                f"consistency proof {a}->{size} with a flipped bit in hash {j}",
                lambda bad=bad: verify_consistency_rfc9162(a, size, froms[a], root, bad),
                rejections,
            )
        must_reject(
            f"consistency proof {a}->{size} against another old root",
            lambda: verify_consistency_rfc9162(a, size, flip_bit(froms[a], 1), root, path),
            rejections,
        )

    # Hash tiles: level 0 holds the leaf hashes; level 1 the roots of full 256-leaf subtrees.
    tiles = 0
    level_nodes = leaves
    for level in range(0, 8):
        count = len(level_nodes)
        if count == 0:
            break
        for n in range((count + TILE_WIDTH - 1) // TILE_WIDTH):
            width = min(TILE_WIDTH, count - n * TILE_WIDTH)
            tp = tile_path(level, n, width)
            body = fetch(src, f"/api/v1/audit/{tp}")
            check(
                len(body) == width * HASH_SIZE, f"{tp}: {len(body)} bytes, not {width * HASH_SIZE}"
            )
            for k in range(width):
                got = body[k * HASH_SIZE : (k + 1) * HASH_SIZE]
                check(got == level_nodes[n * TILE_WIDTH + k], f"{tp}: hash {k} differs")
            tiles += 1
        # The next level's nodes: roots of the full subtrees of 256^(level+1) records.
        span = TILE_WIDTH ** (level + 1)
        level_nodes = []
        for k in range(size // span):
            sub = InmemoryTree(algorithm="sha256")
            for e in entries[k * span : (k + 1) * span]:
                sub.append_entry(e)
            level_nodes.append(sub.get_root())

    # The export with proofs gives the same records and proofs.
    exported = 0
    start = 0
    while start < size:
        body = fetch_text(
            src, f"/api/v1/audit/entries?from={start}&to={size}&size={size}&proofs=true&limit=1000"
        )
        lines = [json.loads(line) for line in body.splitlines() if line]
        if not lines:
            break
        for e in lines:
            k = e["index"]
            check(start <= k, f"export: record {k} after record {start - 1}")
            check(
                0 <= k < size and e["entry"].encode("utf-8") == entries[k],
                f"export: record {k} differs",
            )
            check(
                [b64decode_hash(h, "export proof") for h in e["proof"]] == proofs[k],
                f"export: proof {k} differs",
            )
            exported += 1
            start = k + 1
    check(exported == size, f"export: {exported} records, not {size}")

    return (
        f"OK: {origin} size {size} root {base64.b64encode(root).decode()}: Ed25519 signature "
        f"(cryptography {cryptography.__version__}); {size} records, leaf hashes and inclusion "
        f"proofs (pymerkle {pymerkle.__version__}); {len(signed)} signed checkpoints match "
        f"pymerkle's roots; {len(consistency)} RFC 9162 consistency proofs; {tiles} tiles; "
        f"export of {exported} records; {len(rejections)} tampered inputs rejected; "
        f"{src.requests} requests"
    )


def wrong_versions():
    """The packages of requirements.txt (beside this file) installed at another version."""
    wrong = []
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "requirements.txt")) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name, _, pinned = line.partition("==")
            name = name.split("[", 1)[0]  # "moto[s3]" is the package "moto"
            try:
                installed = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                installed = None
            if installed != pinned:
                wrong.append(f"{name} {installed or 'missing'} (pinned: {pinned})")
    return wrong


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", default=os.environ.get("PARAPET_SERVER"))
    ap.add_argument("--token", default=os.environ.get("PARAPET_TOKEN"))
    ap.add_argument("--public-key", help="the pinned verifier key (default: the served one)")
    ap.add_argument("--size", type=int, help="verify the checkpoint of this size (default: latest)")
    ap.add_argument("--min-size", type=int, default=1, help="fail if the checkpoint is smaller")
    ap.add_argument("--save", metavar="DIR", help="also write every response into DIR")
    ap.add_argument("--from-dir", metavar="DIR", help="read the responses from DIR, not a server")
    ap.add_argument("--check-deps", action="store_true", help="print the package versions and exit")
    args = ap.parse_args(argv)
    if args.check_deps:
        wrong = wrong_versions()
        if wrong:
            sys.stderr.write(
                f"verify_audit_log.py: packages not at the pinned versions: {', '.join(wrong)}; "
                "install them: pip install -r tests/independent/requirements.txt\n"
            )
            return 3
        print(f"pymerkle {pymerkle.__version__}, cryptography {cryptography.__version__}")
        return 0
    try:
        if args.from_dir:
            src = DirSource(args.from_dir)
        else:
            if not args.server:
                ap.error("no server: give --server or PARAPET_SERVER (or --from-dir)")
            if args.save:
                os.makedirs(args.save, exist_ok=True)
            src = HttpSource(args.server, args.token, args.save)
        print(verify(src, args.public_key, args.size, args.min_size))
        return 0
    except Failure as err:
        sys.stderr.write(f"verify_audit_log.py: FAILED: {err}\n")
        return 1
    except (KeyError, TypeError, ValueError) as err:
        sys.stderr.write(f"verify_audit_log.py: FAILED: malformed response: {err!r}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
