// "Verify in browser" on a record's page of the Parapet console: recomputes the record's leaf
// hash, walks its RFC 9162 inclusion proof to a root, and checks that the signed checkpoint
// (C2SP signed note, Ed25519) commits to that root — with the browser's own WebCrypto, so the
// result does not depend on the server's word.
'use strict';

const enc = new TextEncoder();

function b64(s) {
  return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
}

function toB64(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

async function sha256(...parts) {
  const len = parts.reduce((n, p) => n + p.length, 0);
  const buf = new Uint8Array(len);
  let at = 0;
  for (const p of parts) {
    buf.set(p, at);
    at += p.length;
  }
  return new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
}

function equal(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

// RFC 9162 §2.1.3.2, with BigInt so that any tree size works.
async function rootFromInclusionProof(index, size, leaf, proof) {
  if (index >= size) throw new Error(`index ${index} is outside a tree of size ${size}`);
  let fn = index;
  let sn = size - 1n;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new Error('the proof is too long');
    if ((fn & 1n) === 1n || fn === sn) {
      r = await sha256(Uint8Array.of(1), p, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = await sha256(Uint8Array.of(1), r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new Error('the proof is too short');
  return r;
}

// A C2SP checkpoint: "<origin>\n<size>\n<base64 root>\n" + "\n" + signature lines.
function parseCheckpoint(note) {
  const split = note.indexOf('\n\n');
  if (split < 0) throw new Error('the checkpoint has no signature block');
  const body = note.slice(0, split + 1);
  const lines = body.split('\n');
  const sigs = note
    .slice(split + 2)
    .split('\n')
    .filter((l) => l.startsWith('\u2014 '))
    .map((l) => {
      const [, name, sig] = l.split(' ');
      return { name, bytes: b64(sig) };
    });
  return { body, origin: lines[0], size: BigInt(lines[1]), root: b64(lines[2]), sigs };
}

// "<name>+<hex key id>+<base64(0x01 || key)>"
async function verifySignature(cp, vkey) {
  // The name has no '+', the key id is hex; the base64 key may hold '+'.
  const first = vkey.indexOf('+');
  const second = vkey.indexOf('+', first + 1);
  if (first < 0 || second < 0) throw new Error('malformed public key');
  const name = vkey.slice(0, first);
  const hexId = vkey.slice(first + 1, second);
  const keyB64 = vkey.slice(second + 1);
  const key = b64(keyB64);
  if (key.length !== 33 || key[0] !== 1) throw new Error('the public key is not an Ed25519 key');
  const id = await sha256(enc.encode(`${name}\n`), key);
  if (id.slice(0, 4).reduce((s, b) => s + b.toString(16).padStart(2, '0'), '') !== hexId) {
    throw new Error('the public key does not match its key id');
  }
  const sig = cp.sigs.find((s) => s.name === name && equal(s.bytes.slice(0, 4), id.slice(0, 4)));
  if (!sig) throw new Error(`the checkpoint has no signature by ${name}`);
  let pub;
  try {
    pub = await crypto.subtle.importKey('raw', key.slice(1), { name: 'Ed25519' }, false, ['verify']);
  } catch (e) {
    return 'unchecked (this browser has no Ed25519)';
  }
  const ok = await crypto.subtle.verify({ name: 'Ed25519' }, pub, sig.bytes.slice(4), enc.encode(cp.body));
  if (!ok) throw new Error('the checkpoint signature is INVALID');
  return `valid (${name}, key ${hexId})`;
}

async function verify(el) {
  const d = el.dataset;
  const cp = parseCheckpoint(d.checkpoint);
  const size = BigInt(d.size);
  if (cp.size !== size) throw new Error(`the checkpoint is for size ${cp.size}, the proof for ${size}`);
  const signature = await verifySignature(cp, d.publicKey);
  const leaf = await sha256(Uint8Array.of(0), enc.encode(d.entry));
  const proof = d.proof ? d.proof.split(' ').map(b64) : [];
  const root = await rootFromInclusionProof(BigInt(d.index), size, leaf, proof);
  if (!equal(root, cp.root)) {
    throw new Error(`the proof gives root ${toB64(root)}, the checkpoint signed ${toB64(cp.root)}`);
  }
  return (
    `Verified in this browser: record ${d.index} hashes to leaf ${toB64(leaf)}; its ` +
    `${proof.length}-hash proof gives root ${toB64(root)}, the root of the checkpoint of size ` +
    `${size}; signature ${signature}.`
  );
}

document.addEventListener('DOMContentLoaded', () => {
  const button = document.getElementById('verify');
  const out = document.getElementById('verify-result');
  if (!button || !out) return;
  button.addEventListener('click', async () => {
    out.className = '';
    out.textContent = 'Verifying…';
    try {
      out.textContent = await verify(button);
      out.className = 'verified';
    } catch (e) {
      out.textContent = `NOT verified: ${e.message}`;
      out.className = 'failed';
    }
  });
});
