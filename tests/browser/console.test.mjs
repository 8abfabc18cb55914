// End-to-end test of the web console in a real browser (Debian's Chromium driven by
// playwright-core; no browser is ever downloaded).
//
//   PARAPET_BIN=target/debug/parapet node --test tests/browser/console.test.mjs
//
// It starts `parapet serve` itself on 127.0.0.1:0 with a fresh data directory, drives the console
// through log-in (wrong and right password), the navigation, and the creation of a tenant, checks
// the security headers, and leaves a screenshot in a temporary directory.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';

const PASSWORD = 'browser-test-password-1';
const CHROMIUM = process.env.PARAPET_CHROMIUM || '/usr/bin/chromium';
const START_TIMEOUT_MS = 60_000;
const STEP_TIMEOUT_MS = 20_000;

/** Starts `parapet serve` and resolves with { child, url, output } once it is listening. */
function startServer(bin, dataDir) {
  return new Promise((resolve, reject) => {
    const output = [];
    const child = spawn(
      bin,
      ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir],
      {
        env: { ...process.env, PARAPET_BOOTSTRAP_PASSWORD: PASSWORD, PARAPET_PROVIDER_MFA_REQUIRED: 'false' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const fail = (why) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${why}\n--- server output ---\n${output.slice(-40).join('\n')}`));
    };
    const timer = setTimeout(
      () => fail(`parapet serve did not print "listening on http://..." within ${START_TIMEOUT_MS} ms`),
      START_TIMEOUT_MS,
    );
    child.on('error', (e) => fail(`cannot start ${bin}: ${e.message}`));
    child.on('exit', (code, signal) => fail(`parapet serve exited early (code ${code}, signal ${signal})`));
    createInterface({ input: child.stderr }).on('line', (line) => output.push(`[stderr] ${line}`));
    createInterface({ input: child.stdout }).on('line', (line) => {
      output.push(line);
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolve({ child, url: m[1], output });
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

/** Clicks the submit button of `form` and waits for the page that the submission leads to. */
async function submit(page, form) {
  const button = form.locator('button[type="submit"], input[type="submit"], button:not([type])').first();
  const loaded = page.waitForEvent('load', { timeout: STEP_TIMEOUT_MS });
  await button.click();
  await loaded;
}

function assertSecurityHeaders(headers, where) {
  const csp = headers['content-security-policy'];
  assert.ok(csp, `${where}: no Content-Security-Policy header`);
  assert.match(csp, /frame-ancestors 'none'/, `${where}: CSP lacks frame-ancestors 'none': ${csp}`);
  assert.equal(
    headers['x-content-type-options'],
    'nosniff',
    `${where}: X-Content-Type-Options is ${headers['x-content-type-options']}`,
  );
}

describe('web console in Chromium', { timeout: 180_000 }, () => {
  let server;
  let browser;
  let dataDir;
  let shotDir;
  const pageErrors = [];

  before(async () => {
    const bin = process.env.PARAPET_BIN;
    assert.ok(bin, 'PARAPET_BIN must name the parapet binary (scripts/test sets it to target/debug/parapet)');
    assert.ok(existsSync(bin), `PARAPET_BIN=${bin} does not exist; build it with cargo build -p parapet`);
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found; install Debian's chromium package`);
    dataDir = mkdtempSync(join(tmpdir(), 'parapet-browser-data-'));
    shotDir = mkdtempSync(join(tmpdir(), 'parapet-browser-shots-'));
    server = await startServer(bin, dataDir);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--headless',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await stopServer(server?.child);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  async function newPage() {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    page.on('pageerror', (e) => pageErrors.push(`${page.url()}: ${e.message}`));
    return page;
  }

  /** Runs `fn` on a page of a fresh browser context; on failure leaves a screenshot. */
  async function withPage(name, fn) {
    const page = await newPage();
    try {
      await fn(page);
    } catch (e) {
      const shot = join(shotDir, `${name}-failure.png`);
      await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
      console.log(`failure screenshot: ${shot}`);
      throw e;
    } finally {
      await page.context().close();
    }
  }

  async function openLogin(page) {
    const res = await page.goto(`${server.url}/console/login`);
    assert.ok(res, 'no response for /console/login');
    assert.equal(res.status(), 200, `/console/login answered ${res.status()}`);
    const form = page.locator('form#login-form');
    await form.waitFor({ state: 'visible' });
    assert.equal(await form.locator('input[name="username"]').count(), 1, 'no username input');
    assert.equal(await form.locator('input[name="password"]').count(), 1, 'no password input');
    return { form, res };
  }

  it('serves the console with security headers', () =>
    withPage('headers', async (page) => {
      const { res } = await openLogin(page);
      assertSecurityHeaders(await res.allHeaders(), '/console/login');
    }));

  it('rejects a wrong password with an error and stays on the login page', () =>
    withPage('wrong-password', async (page) => {
      const { form } = await openLogin(page);
      const wrong = `wrong-${randomBytes(6).toString('hex')}`;
      await form.locator('input[name="username"]').fill('admin');
      await form.locator('input[name="password"]').fill(wrong);
      await submit(page, form);
      assert.equal(new URL(page.url()).pathname, '/console/login', `landed on ${page.url()}`);
      await page.locator('form#login-form').waitFor({ state: 'visible' });
      // The message must be about the credentials (not, say, an expired form).
      const alert = page.locator('[role="alert"], .error, .alert, .flash-error, #login-error');
      const shown =
        (await alert.count()) > 0
          ? await alert.first().innerText()
          : await page.locator('body').innerText();
      assert.match(
        shown,
        /wrong|invalid|incorrect|not recogni[sz]ed/i,
        `no credentials error shown after a wrong password; shown:\n${shown}`,
      );
      assert.ok(!(await page.content()).includes(wrong), 'the wrong password is echoed back in the page');
      // No session was created: the console still sends us to the login page.
      await page.goto(`${server.url}/console/tenants`);
      assert.equal(new URL(page.url()).pathname, '/console/login', 'a failed log-in opened a session');
    }));

  it('logs in, shows the modules, and creates a tenant', () =>
    withPage('login-and-create-tenant', async (page) => {
      const { form } = await openLogin(page);
      await form.locator('input[name="username"]').fill('admin');
      await form.locator('input[name="password"]').fill(PASSWORD);
      await submit(page, form);
      const landed = new URL(page.url());
      if (!landed.pathname.startsWith('/console') || landed.pathname === '/console/login') {
        const text = await page.locator('body').innerText().catch(() => '');
        assert.fail(`log-in did not lead into the console: ${page.url()}; page text:\n${text}`);
      }
      const nav = page.locator('nav').first();
      await nav.waitFor({ state: 'visible' });
      const navText = await nav.innerText();
      for (const module of ['Tenants', 'Users', 'Audit']) {
        assert.ok(navText.includes(module), `nav lacks "${module}": ${navText}`);
      }

      const res = await page.goto(`${server.url}/console/tenants`);
      assert.ok(res, 'no response for /console/tenants');
      assert.equal(res.status(), 200, `/console/tenants answered ${res.status()}`);
      assertSecurityHeaders(await res.allHeaders(), '/console/tenants');

      const name = `browser-${randomBytes(4).toString('hex')}`;
      const create = page.locator('form#tenant-create-form');
      await create.locator('input[name="name"]').fill(name);
      await submit(page, create);
      assert.equal(new URL(page.url()).pathname, '/console/tenants', `after creating: ${page.url()}`);
      const table = page.locator('table#tenants');
      await table.waitFor({ state: 'visible' });
      const tableText = await table.innerText();
      assert.ok(tableText.includes(name), `table#tenants lacks ${name}:\n${tableText}`);

      const shot = join(shotDir, 'console-tenants.png');
      await page.screenshot({ path: shot, fullPage: true });
      assert.ok(existsSync(shot), 'no screenshot written');
      console.log(`screenshot: ${shot}`);
    }));

  it('shows an audit record and verifies its inclusion proof in the browser', () =>
    withPage('audit-verify', async (page) => {
      const { form } = await openLogin(page);
      await form.locator('input[name="username"]').fill('admin');
      await form.locator('input[name="password"]').fill(PASSWORD);
      await submit(page, form);
      await page.goto(`${server.url}/console/audit`);
      const chart = page.locator('svg.chart');
      assert.equal(await chart.count(), 1, 'the audit page has no activity chart');
      const first = page.locator('table#audit tbody a').last();
      const href = await first.getAttribute('href');
      assert.match(href ?? '', /^\/console\/audit\/\d+$/, `record link is ${href}`);
      // The record may still wait for its checkpoint: reload until the proof is shown.
      const deadline = Date.now() + STEP_TIMEOUT_MS;
      for (;;) {
        const res = await page.goto(`${server.url}${href}`);
        assert.equal(res?.status(), 200, `${href} answered ${res?.status()}`);
        assertSecurityHeaders(await res.allHeaders(), href);
        if ((await page.locator('button#verify').count()) > 0) break;
        assert.ok(Date.now() < deadline, `${href} shows no proof after ${STEP_TIMEOUT_MS} ms`);
        await page.waitForTimeout(200);
      }
      const entry = await page.locator('pre#entry').innerText();
      assert.ok(JSON.parse(entry).action, `the entry is not a record: ${entry}`);
      const result = page.locator('output#verify-result');
      await page.locator('button#verify').click();
      await page.waitForFunction(() => /verified/i.test(document.getElementById('verify-result').textContent));
      const text = await result.innerText();
      assert.match(text, /^Verified in this browser/, `verification failed: ${text}`);
      assert.match(text, /signature valid/, `the signature was not checked: ${text}`);
      // A changed entry must fail: the check is real.
      await page.evaluate(() => {
        const b = document.getElementById('verify');
        b.dataset.entry = b.dataset.entry.replace('"action":"', '"action":"x');
      });
      await page.locator('button#verify').click();
      await page.waitForFunction(() => /NOT verified/.test(document.getElementById('verify-result').textContent));
      assert.match(await result.innerText(), /gives root/, 'a tampered entry was not rejected');
      // The access report and the time-range search.
      const report = await page.goto(`${server.url}/console/audit/report`);
      assert.equal(report?.status(), 200, `/console/audit/report answered ${report?.status()}`);
      const accounts = await page.locator('table#access-accounts').innerText();
      assert.match(accounts, /user:provider\/admin/, `the report lacks the admin: ${accounts}`);
      await page.goto(`${server.url}/console/audit?since=2000-01-01T00:00&action=auth.login`);
      const rows = await page.locator('table#audit tbody tr').count();
      assert.ok(rows >= 1, 'the time-range search found no log-in');
      await page.goto(`${server.url}/console/audit?since=2999-01-01T00:00`);
      assert.equal(await page.locator('table#audit tbody tr').count(), 0, 'a future range found records');
      // Your sessions and account history.
      const sess = await page.goto(`${server.url}/console/sessions`);
      assert.equal(sess?.status(), 200, `/console/sessions answered ${sess?.status()}`);
      assert.match(await page.locator('table#sessions').innerText(), /this session/);
      assert.match(await page.locator('table#history').innerText(), /auth\.login/);
    }));

  it('registers, imports and inspects assets with their health chart', () =>
    withPage('assets', async (page) => {
      const { form } = await openLogin(page);
      await form.locator('input[name="username"]').fill('admin');
      await form.locator('input[name="password"]').fill(PASSWORD);
      await submit(page, form);
      const res = await page.goto(`${server.url}/console/assets`);
      assert.equal(res?.status(), 200, `/console/assets answered ${res?.status()}`);
      assert.equal(new URL(page.url()).pathname, '/console/tenants/provider/assets');
      assertSecurityHeaders(await res.allHeaders(), '/console/assets');
      const create = page.locator('form#asset-create-form');
      await create.locator('input[name="name"]').fill('hv-1');
      await create.locator('select[name="kind"]').selectOption('hypervisor');
      await create.locator('input[name="os_name"]').fill('Debian');
      await create.locator('input[name="os_version"]').fill('12');
      await create.locator('input[name="applications"]').fill('qemu=7.2; libvirt=9.0.0');
      await create.locator('input[name="addresses"]').fill('10.9.0.1');
      await submit(page, create);
      assert.match(new URL(page.url()).pathname, /^\/console\/tenants\/provider\/assets\/[0-9a-f-]{36}$/);
      assert.match(await page.locator('dl#asset').innerText(), /qemu 7\.2/);
      // Health: set it down, see it on the page and in the chart of the list.
      const health = page.locator('form#asset-health-form');
      await health.locator('select[name="health"]').selectOption('down');
      await health.locator('input[name="reason"]').fill('power supply failed');
      await submit(page, health);
      assert.match(await page.locator('h1').innerText(), /down/);
      await page.goto(`${server.url}/console/tenants/provider/assets`);
      const imp = page.locator('form#asset-import-form');
      await imp.locator('textarea[name="csv"]').fill('name,kind,os_name,os_version\nfw-1,network-device,,\ndb-1,database,Debian,12\n');
      await submit(page, imp);
      const table = await page.locator('table#assets').innerText();
      for (const n of ['hv-1', 'fw-1', 'db-1']) assert.ok(table.includes(n), `table#assets lacks ${n}:\n${table}`);
      const chart = page.locator('svg.chart.health');
      assert.equal(await chart.count(), 1, 'no health chart');
      assert.match(await chart.innerHTML(), /<title>down: 1<\/title>/);
      // A bad import is refused with the line, and nothing is written.
      await imp.locator('textarea[name="csv"]').fill('name,kind\nok-1,vm\nbad-1,spaceship\n');
      await submit(page, imp);
      assert.match(await page.locator('p.error').innerText(), /line 3/);
      assert.ok(!(await page.locator('table#assets').innerText()).includes('ok-1'), 'a refused import wrote a row');
      const shot = join(shotDir, 'console-assets.png');
      await page.goto(`${server.url}/console/tenants/provider/assets`);
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`screenshot: ${shot}`);
    }));

  it('raised no JavaScript errors', () => {
    assert.deepEqual(pageErrors, []);
  });
});
