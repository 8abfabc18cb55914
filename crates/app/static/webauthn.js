// WebAuthn in the console: registers a security key (form #webauthn-register) and signs the
// log-in challenge (form #webauthn-login). Binary fields travel as base64url; the server checks
// everything (challenge, origin, relying party, signature, counter).
'use strict';

function b64uToBytes(s) {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}

function bytesToB64u(buf) {
  const bytes = new Uint8Array(buf);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function credentialJson(c) {
  const r = c.response;
  const out = { id: c.id, rawId: bytesToB64u(c.rawId), type: c.type, response: {
    clientDataJSON: bytesToB64u(r.clientDataJSON) } };
  if (r.attestationObject) out.response.attestationObject = bytesToB64u(r.attestationObject);
  if (r.authenticatorData) out.response.authenticatorData = bytesToB64u(r.authenticatorData);
  if (r.signature) out.response.signature = bytesToB64u(r.signature);
  if (r.userHandle) out.response.userHandle = bytesToB64u(r.userHandle);
  return JSON.stringify(out);
}

function say(msg) {
  const p = document.getElementById('webauthn-status');
  if (p) p.textContent = msg;
}

async function register(form) {
  const pk = JSON.parse(form.dataset.options);
  pk.challenge = b64uToBytes(pk.challenge);
  pk.user.id = b64uToBytes(pk.user.id);
  for (const c of pk.excludeCredentials || []) c.id = b64uToBytes(c.id);
  let cred;
  try {
    cred = await navigator.credentials.create({ publicKey: pk });
  } catch (e) {
    say(`The security key did not register: ${e.message}`);
    return;
  }
  form.elements.credential.value = credentialJson(cred);
  form.submit();
}

async function login(form) {
  const pk = JSON.parse(form.dataset.options);
  pk.challenge = b64uToBytes(pk.challenge);
  for (const c of pk.allowCredentials || []) c.id = b64uToBytes(c.id);
  let cred;
  try {
    cred = await navigator.credentials.get({ publicKey: pk });
  } catch (e) {
    say(`The security key did not answer: ${e.message}`);
    return;
  }
  form.elements.credential.value = credentialJson(cred);
  form.submit();
}

document.addEventListener('DOMContentLoaded', () => {
  const reg = document.getElementById('webauthn-register');
  if (reg) {
    reg.addEventListener('submit', (ev) => {
      ev.preventDefault();
      register(reg).catch((e) => say(`Error: ${e.message}`));
    });
  }
  const lf = document.getElementById('webauthn-login');
  if (lf) {
    lf.addEventListener('submit', (ev) => {
      ev.preventDefault();
      login(lf).catch((e) => say(`Error: ${e.message}`));
    });
  }
});
