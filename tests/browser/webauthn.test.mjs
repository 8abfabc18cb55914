// WebAuthn in a real browser: Debian's Chromium with a virtual authenticator (DevTools protocol
// `WebAuthn.addVirtualAuthenticator`, CTAP2, user verification), driven by playwright-core.
//
//   PARAPET_BIN=target/debug/parapet node --test tests/browser/webauthn.test.mjs
//
// The server runs with the default step-up rule (provider staff need a second factor). The
// administrator logs in with the password alone and lands on the second-factor page (the
// session may do nothing else), registers a passkey in the console, logs out, logs in with
// password + passkey and may then work (create a tenant). The browser reaches the server as
// http://localhost:PORT: WebAuthn needs a host name, and localhost is a secure context.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const PASSWORD = 'browser-webauthn-password-1';
const CHROMIUM = process.env.PARAPET_CHROMIUM || '/usr/bin/chromium';
const STEP_TIMEOUT_MS = 20_000;

function startServer(bin, dataDir) {
  return new Promise((resolve, reject) => {
    const output = [];
    const child = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir], {
      env: { ...process.env, PARAPET_BOOTSTRAP_PASSWORD: PASSWORD },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const fail = (why) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${why}\n--- server output ---\n${output.slice(-40).join('\n')}`));
    };
    const timer = setTimeout(() => fail('parapet serve did not start within 60 s'), 60_000);
    child.on('error', (e) => fail(`cannot start ${bin}: ${e.message}`));
    child.on('exit', (code, signal) => fail(`parapet serve exited early (code ${code}, signal ${signal})`));
    createInterface({ input: child.stderr }).on('line', (line) => output.push(`[stderr] ${line}`));
    createInterface({ input: child.stdout }).on('line', (line) => {
      output.push(line);
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolve({ child, url: `http://localhost:${m[1]}`, output });
      }
    });
  });
}

async function stopServer(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timeout = new Promise((resolve) => setTimeout(() => resolve('timeout'), 5_000));
  if ((await Promise.race([exited, timeout])) === 'timeout') {
    child.kill('SIGKILL');
    await exited;
  }
}

async function submit(page, form) {
  const loaded = page.waitForEvent('load', { timeout: STEP_TIMEOUT_MS });
  await form.locator('button[type="submit"]').first().click();
  await loaded;
}

describe('WebAuthn passkeys in Chromium (virtual authenticator)', { timeout: 180_000 }, () => {
  let server;
  let browser;
  let dataDir;
  const pageErrors = [];

  before(async () => {
    const bin = process.env.PARAPET_BIN;
    assert.ok(bin, 'PARAPET_BIN must name the parapet binary');
    assert.ok(existsSync(bin), `PARAPET_BIN=${bin} does not exist`);
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found; install Debian's chromium package`);
    dataDir = mkdtempSync(join(tmpdir(), 'parapet-webauthn-data-'));
    server = await startServer(bin, dataDir);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--headless', '--disable-gpu', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await stopServer(server?.child);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('enrols a passkey as the step-up factor and logs in with password + passkey', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    page.on('pageerror', (e) => pageErrors.push(`${page.url()}: ${e.message}`));
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2',
        transport: 'internal',
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });
    const shots = mkdtempSync(join(tmpdir(), 'parapet-webauthn-shots-'));
    try {
      // 1. Password only: the provider administrator must enrol a second factor first.
      await page.goto(`${server.url}/console/login`);
      let form = page.locator('form#login-form');
      await form.locator('input[name="username"]').fill('admin');
      await form.locator('input[name="password"]').fill(PASSWORD);
      await submit(page, form);
      assert.equal(new URL(page.url()).pathname, '/console/mfa', `landed on ${page.url()}`);

      // 2. Register a passkey in the console.
      await page.goto(`${server.url}/console/webauthn`);
      assert.equal(await page.locator('#no-keys').count(), 1, 'a key exists before registration');
      const begin = page.locator('form#webauthn-begin');
      await begin.locator('input[name="name"]').fill('virtual passkey');
      await submit(page, begin);
      const reg = page.locator('form#webauthn-register');
      const registered = page.waitForURL(/\/console\/webauthn\/finish$/, { timeout: STEP_TIMEOUT_MS });
      await reg.locator('button[type="submit"]').click();
      await registered;
      await page.locator('table#webauthn-keys').waitFor({ state: 'visible' });
      const names = await page.locator('table#webauthn-keys .key-name').allInnerTexts();
      assert.deepEqual(names, ['virtual passkey'], `keys listed: ${names}; status: ${await page.locator('#webauthn-status').innerText()}`);
      const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
      assert.equal(credentials.length, 1, 'the virtual authenticator holds no credential');
      assert.ok(credentials[0].rpId === 'localhost', `rpId ${credentials[0].rpId}`);
      const countAfterRegistration = credentials[0].signCount;

      // 3. Log out, then log in with the password: the passkey is asked for.
      await submit(page, page.locator('header form[action="/console/logout"]'));
      assert.equal(new URL(page.url()).pathname, '/console/login');
      form = page.locator('form#login-form');
      await form.locator('input[name="username"]').fill('admin');
      await form.locator('input[name="password"]').fill(PASSWORD);
      await submit(page, form);
      const keyForm = page.locator('form#webauthn-login');
      await keyForm.waitFor({ state: 'visible' });
      const landed = page.waitForURL(/\/console$/, { timeout: STEP_TIMEOUT_MS });
      await keyForm.locator('button[type="submit"]').click();
      await landed;

      // 4. A full session: the administrator may work now.
      await page.goto(`${server.url}/console/tenants`);
      assert.equal(new URL(page.url()).pathname, '/console/tenants', `sent to ${page.url()}`);
      const after = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
      assert.ok(after.credentials[0].signCount > countAfterRegistration, 'the key did not sign');
      await page.goto(`${server.url}/console/webauthn`);
      const used = await page.locator('table#webauthn-keys tbody tr td').nth(4).innerText();
      assert.notEqual(used.trim(), 'never', 'the last use is not recorded');

      // 5. The authenticator's key is gone (lost): the log-in cannot complete.
      await cdp.send('WebAuthn.clearCredentials', { authenticatorId });
      await submit(page, page.locator('header form[action="/console/logout"]'));
      form = page.locator('form#login-form');
      await form.locator('input[name="username"]').fill('admin');
      await form.locator('input[name="password"]').fill(PASSWORD);
      await submit(page, form);
      await page.locator('form#webauthn-login button[type="submit"]').click();
      await page.locator('#webauthn-status').filter({ hasText: /did not answer/ }).waitFor();
      await page.goto(`${server.url}/console/tenants`);
      assert.equal(new URL(page.url()).pathname, '/console/login', 'a session opened without the key');
      assert.deepEqual(pageErrors, [], `script errors: ${pageErrors.join('\n')}`);
    } catch (e) {
      const shot = join(shots, 'webauthn-failure.png');
      await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
      console.log(`failure screenshot: ${shot}`);
      throw e;
    } finally {
      await context.close();
    }
  });
});
