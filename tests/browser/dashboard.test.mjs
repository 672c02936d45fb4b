// tests/browser/dashboard.test.mjs — the dashboard (web/dashboard.html) in headless
// Chromium, driven by tests/integration/t_dashboard.sh, which starts two serves on one
// database and hands over (environment):
//   RT_URL           serve without tokens (loopback dev mode)
//   RT_URL_AUTH      serve with RATCHET_TOKENS; RT_TOKEN_VIEWER a viewer token of it
//   RT_RUN_ID        a run of "demo" (exec sleep, then transform) started just before
//   RT_FLAKY_ID      a finished run of "flaky" (two failed attempts)
//   RT_GATED_ID      a run of "gated" awaiting approval
//   RT_PROGRESS_ID   a run of "progressive": its exec step reported 40/100 and waits
//   RT_SHOTS         directories to save the screenshots in (colon-separated)
// Everything is read from the page's DOM as it refreshes itself: no reloads, except where
// the token's survival across one is the point.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const URL_OPEN = env('RT_URL');
const URL_AUTH = env('RT_URL_AUTH');
const VIEWER = env('RT_TOKEN_VIEWER');
const RUN_ID = env('RT_RUN_ID');
const FLAKY_ID = env('RT_FLAKY_ID');
const GATED_ID = env('RT_GATED_ID');
const PROGRESS_ID = env('RT_PROGRESS_ID');
const SHOTS = env('RT_SHOTS').split(':').filter(Boolean);
const WAIT = 30000;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

let current = null; // the page under test, for a screenshot on failure
const t0 = Date.now();
const log = (msg) => console.log(`dashboard.test: ${((Date.now() - t0) / 1000).toFixed(1)}s ${msg}`);
function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function shot(page, name) {
  for (const dir of SHOTS) {
    mkdirSync(dir, { recursive: true });
    await page.screenshot({ path: join(dir, name), fullPage: true });
  }
  log(`screenshot ${name} in ${SHOTS.join(', ')}`);
}

// Console errors, page errors, and any request that leaves loopback. allowed: console
// messages that are expected in this phase (e.g. the 401 that asks for a token).
function watch(page, problems, allowed) {
  page.on('console', (m) => {
    if (m.type() !== 'error' && m.type() !== 'warning') return;
    if (m.type() === 'error' && !allowed.some((re) => re.test(m.text()))) problems.push(`console ${m.type()}: ${m.text()}`);
    else if (m.type() === 'warning' && /Content.Security.Policy|Refused/i.test(m.text())) problems.push(`console warning: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.protocol === 'data:') return;
    if (!LOOPBACK.has(u.hostname)) problems.push(`request off loopback: ${r.url()}`);
  });
}

async function startRun(base, data, workflow = 'demo') {
  const resp = await fetch(`${base}/api/v1/workflows/${workflow}/runs`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ data }),
  });
  check(resp.status === 201, `starting a run answered ${resp.status}`);
  return (await resp.json()).id;
}

async function rowStatus(page, id) {
  return page.locator(`#runs-body tr[data-run-id="${id}"] [data-status]`).first().getAttribute('data-status', { timeout: WAIT });
}

async function waitRowStatus(page, id, status) {
  await page.waitForSelector(`#runs-body tr[data-run-id="${id}"] [data-status="${status}"]`, { timeout: WAIT });
}

async function openPhase(browser) {
  log(`open mode: ${URL_OPEN}`);
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  current = page;
  const problems = [];
  watch(page, problems, []);
  const resp = await page.goto(`${URL_OPEN}/`);
  check(resp.status() === 200, `GET / answered ${resp.status()}`);
  check(/^text\/html; charset=utf-8$/i.test(resp.headers()['content-type'] || ''), `content-type ${resp.headers()['content-type']}`);
  await page.waitForURL(/#\/runs$/, { timeout: WAIT });
  // A marker that a reload would wipe: every later check runs on the same document.
  await page.evaluate(() => { window.rtNoReload = 42; });

  // The run started by the shell: it shows up and completes through live refresh.
  const first = await rowStatus(page, RUN_ID);
  log(`run ${RUN_ID} first seen as ${first}`);
  await waitRowStatus(page, RUN_ID, 'completed');
  log(`run ${RUN_ID} completed on the page`);

  // A run started while the page is open appears and completes without a reload.
  const fresh = await startRun(URL_OPEN, { n: 7, note: '<img src=x onerror="window.rtXss=1">' });
  await page.waitForSelector(`#runs-body tr[data-run-id="${fresh}"]`, { timeout: WAIT });
  const seen = await rowStatus(page, fresh);
  log(`run ${fresh} appeared live as ${seen}`);
  await waitRowStatus(page, fresh, 'completed');
  check((await page.evaluate(() => window.rtNoReload)) === 42, 'the page reloaded');
  log(`run ${fresh} completed on the page, no reload`);

  // The charts drew from /api/v1/stats.
  await page.waitForSelector('#overview svg rect', { timeout: WAIT });
  const kpi = await page.locator('#overview .kpi .v').first().textContent();
  check(Number(kpi.replace(/\D/g, '')) >= 5, `finished-runs figure ${kpi}`);
  await shot(page, 'dashboard.png');

  // Filters: status=failed shows the flaky run and not the demo ones.
  await page.selectOption('#filters select[name=status]', 'failed');
  await page.waitForSelector(`#runs-body tr[data-run-id="${FLAKY_ID}"]`, { timeout: WAIT });
  check((await page.locator(`#runs-body tr[data-run-id="${RUN_ID}"]`).count()) === 0, 'status filter kept a completed run');
  check(/status=failed/.test(page.url()), `filter not in the URL: ${page.url()}`);

  // Run detail: the timeline has a bar per step, the output is shown as text.
  await page.goto(`${URL_OPEN}/#/runs`);
  await page.click(`#runs-body tr[data-run-id="${fresh}"] a[href="#/runs/${fresh}"]`);
  await page.waitForSelector('#timeline g[data-step="nap"][data-status="completed"] rect', { timeout: WAIT });
  await page.waitForSelector('#timeline g[data-step="shape"][data-status="completed"] rect', { timeout: WAIT });
  const output = await page.locator('#run-output pre.json').first().textContent();
  check(output.includes('"ok": true') && output.includes('<img src=x'), `run output not shown as text: ${output}`);
  check((await page.locator('main img').count()) === 0, 'run data became markup');
  check((await page.evaluate(() => window.rtXss)) === undefined, 'run data ran as script');
  await page.click('#steps details[data-step="shape"] summary');
  const stepOut = await page.locator('#steps details[data-step="shape"] pre.json').textContent();
  check(stepOut.includes('"n": 7'), `step output: ${stepOut}`);
  check((await page.locator('#cancel').count()) === 0, 'a finished run offers cancel');
  await shot(page, 'dashboard-run.png');

  // A failed run: its attempts and errors.
  await page.goto(`${URL_OPEN}/#/runs/${FLAKY_ID}`);
  await page.waitForSelector('#timeline g[data-step="boom"][data-status="failed"] rect', { timeout: WAIT });
  const attempts = await page.locator('#steps details[data-step="boom"] table.attempts tr').count();
  check(attempts === 2, `failed attempts listed: ${attempts}`);
  check(/exit code 3/.test(await page.locator('#run-error').textContent()), 'run error not shown');

  // Replay makes a new run and opens it.
  await page.click('#replay');
  await page.waitForFunction((old) => /^#\/runs\/[0-9a-f-]{36}$/.test(location.hash) && !location.hash.endsWith(old), FLAKY_ID, { timeout: WAIT });
  log(`replay opened ${await page.evaluate(() => location.hash)}`);

  // Pause and resume a run from its page.
  const long1 = await startRun(URL_OPEN, {}, 'long'), long2 = await startRun(URL_OPEN, {}, 'long');
  await page.goto(`${URL_OPEN}/#/runs/${long1}`);
  await page.waitForSelector('#run .head [data-status="sleeping"]', { timeout: WAIT });
  await page.click('#pause');
  await page.waitForSelector('#run .head [data-status="paused"]', { timeout: WAIT });
  await shot(page, 'dashboard-paused.png');
  await page.click('#resume');
  await page.waitForSelector('#run .head [data-status="sleeping"]', { timeout: WAIT });
  log(`run ${long1} paused and resumed from its page`);

  // Bulk: select two rows and cancel them (a second click confirms).
  await page.goto(`${URL_OPEN}/#/runs?workflow=long`);
  await waitRowStatus(page, long2, 'sleeping');
  for (const id of [long1, long2]) await page.check(`#runs-body input[data-select="${id}"]`);
  check((await page.locator('#bulk-count').textContent()).startsWith('2 selected'), 'selection count');
  await page.click('#bulk-cancel-selected');
  await page.click('#bulk-cancel-selected');
  await waitRowStatus(page, long1, 'cancelled');
  await waitRowStatus(page, long2, 'cancelled');
  // "All matching": counted first (dry run), acted on after the confirming click.
  const long3 = await startRun(URL_OPEN, {}, 'long');
  await waitRowStatus(page, long3, 'sleeping');
  await page.selectOption('#filters select[name=status]', 'sleeping');
  await page.waitForURL(/status=sleeping/, { timeout: WAIT });
  await page.click('#bulk-cancel-matching');
  await page.waitForSelector('#bulk-cancel-matching[data-count="1"]', { timeout: WAIT });
  await page.click('#bulk-cancel-matching');
  await page.waitForSelector('#bulk-result', { timeout: WAIT });
  const said = await page.locator('#bulk-result').textContent();
  check(said === 'cancelled 1 of 1 matching run(s)', `bulk result: ${said}`);
  await page.goto(`${URL_OPEN}/#/runs?workflow=long`);
  await waitRowStatus(page, long3, 'cancelled');
  log('bulk cancel of selected and of all matching runs');

  // Schedules: pause, then resume, through the page's buttons.
  await page.goto(`${URL_OPEN}/#/schedules`);
  await page.waitForSelector('#schedules-body tr[data-workflow="tick"] [data-status="active"]', { timeout: WAIT });
  await page.click('#schedules-body tr[data-workflow="tick"] button[data-action="pause"]');
  await page.waitForSelector('#schedules-body tr[data-workflow="tick"] [data-status="paused"]', { timeout: WAIT });
  const sched = await (await fetch(`${URL_OPEN}/api/v1/schedules`)).json();
  check(sched.schedules.some((s) => s.workflow === 'tick' && s.state === 'paused'), 'pause did not reach the API');
  await page.click('#schedules-body tr[data-workflow="tick"] button[data-action="resume"]');
  await page.waitForSelector('#schedules-body tr[data-workflow="tick"] [data-status="active"]', { timeout: WAIT });
  log('schedules: paused and resumed');

  // A running step's progress: a bar at 40 of 100 and its message.
  await page.goto(`${URL_OPEN}/#/runs/${PROGRESS_ID}`);
  const bar = '#steps details[data-step="work"] .progress[data-progress="40"] progress';
  await page.waitForSelector(bar, { timeout: WAIT });
  check((await page.locator(bar).getAttribute('max')) === '100', 'progress bar max');
  const ptext = await page.locator('#steps details[data-step="work"] .progress').textContent();
  check(ptext.includes('40/100 (40%)') && ptext.includes('syncing account 40'), `progress text: ${ptext}`);
  log(`progress shown: ${ptext}`);

  // Health: each workflow's figures from /api/v1/stats/workflows.
  await page.goto(`${URL_OPEN}/#/health`);
  const wfCell = (wf, field) => page.locator(`#health-body tr[data-workflow="${wf}"] td[data-field="${field}"]`);
  await page.waitForSelector('#health-body tr[data-workflow="demo"]', { timeout: WAIT });
  check(Number((await wfCell('demo', 'runs_1h').textContent()).replace(/\D/g, '')) >= 3, 'demo runs in the last hour');
  check((await wfCell('demo', 'success_1h').textContent()) === '100%', `demo success: ${await wfCell('demo', 'success_1h').textContent()}`);
  check(/\d/.test(await wfCell('demo', 'p95_24h').textContent()), 'demo p95');
  check((await wfCell('flaky', 'success_24h').textContent()) === '0.0%', `flaky success: ${await wfCell('flaky', 'success_24h').textContent()}`);
  const lf = await wfCell('flaky', 'last_failure').textContent();
  check(lf.includes('failed') && lf.includes('exit code 3'), `flaky last failure: ${lf}`);
  check((await wfCell('tick', 'next_fire').textContent()) !== '\u2014', 'tick has no next cron fire');
  check((await wfCell('gated', 'active').textContent()) === '1', 'gated has one unfinished run');
  await shot(page, 'dashboard-health.png');

  // Workflows: the registry list, pause/resume of a whole workflow, a version's diff.
  await page.goto(`${URL_OPEN}/#/workflows`);
  await page.waitForSelector('#workflows-body tr[data-workflow="tick"] [data-status="active"]', { timeout: WAIT });
  await page.click('#workflows-body tr[data-workflow="tick"] button[data-action="pause"]');
  await page.waitForSelector('#workflows-body tr[data-workflow="tick"] [data-status="paused"]', { timeout: WAIT });
  const wfs = await (await fetch(`${URL_OPEN}/api/v1/workflows`)).json();
  check(wfs.workflows.some((w) => w.id === 'tick' && w.paused === true), 'workflow pause did not reach the API');
  await page.click('#workflows-body tr[data-workflow="tick"] button[data-action="resume"]');
  await page.waitForSelector('#workflows-body tr[data-workflow="tick"] [data-status="active"]', { timeout: WAIT });
  const put = await fetch(`${URL_OPEN}/api/v1/workflows/tick`, { method: 'PUT', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id: 'tick', triggers: [{ cron: '0 0 1 1 *' }], steps: [{ id: 'a', uses: 'transform', with: { value: 2 } }] }) });
  check(put.status === 201, `PUT of a new version answered ${put.status}`);
  await page.goto(`${URL_OPEN}/#/workflows/tick`);
  await page.waitForSelector('#versions .appr[data-action="apply"] pre.diff .add', { timeout: WAIT });
  const diff = await page.locator('#versions .appr[data-action="apply"] pre.diff').first().textContent();
  check(diff.includes('+') && diff.includes('"value": 2') && diff.includes('"value": 1'), `version diff: ${diff}`);
  await shot(page, 'dashboard-workflows.png');
  log('workflows: paused, resumed, a new version and its diff');

  // Approvals inbox: the gated run, what it asks, and the command that decides it.
  await page.goto(`${URL_OPEN}/#/approvals`);
  await page.waitForSelector(`#approvals .appr[data-run-id="${GATED_ID}"]`, { timeout: WAIT });
  const card = await page.locator(`#approvals .appr[data-run-id="${GATED_ID}"]`).textContent();
  check(card.includes(`ratchet approve ${GATED_ID} --as ops-lead`), `approve command missing: ${card}`);
  check(card.includes('agent:support-bot') && card.includes('acct_42'), `who asked missing: ${card}`);
  check((await page.locator('#appr-count').textContent()) === '1', 'approvals count in the nav');
  await shot(page, 'dashboard-approvals.png');

  check(await page.locator('#banner').isHidden(), `error banner shown: ${await page.locator('#banner').textContent()}`);
  await page.close();
  return problems;
}

async function authPhase(browser) {
  log(`token mode: ${URL_AUTH}`);
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  current = page;
  const problems = [];
  // Asking for a token is a 401; a viewer pausing a schedule is a 403.
  watch(page, problems, [/status of 401/, /status of 403/]);
  await page.goto(`${URL_AUTH}/#/runs`);
  await page.waitForSelector('#auth:not([hidden]) #auth-token', { timeout: WAIT });
  log('asked for a token');

  await page.fill('#auth-token', 'not-a-token');
  await page.click('#auth-form button[type=submit]');
  await page.waitForSelector('#auth:not([hidden]) #auth-msg.bad', { timeout: WAIT });
  log(`a wrong token: ${await page.locator('#auth-msg').textContent()}`);

  await page.fill('#auth-token', VIEWER);
  await page.click('#auth-form button[type=submit]');
  await waitRowStatus(page, RUN_ID, 'completed');
  check(await page.locator('#auth').isHidden(), 'token prompt still shown');
  log('viewer token: runs listed');

  // Kept for the tab (sessionStorage), not in the page's URL.
  await page.reload();
  await waitRowStatus(page, RUN_ID, 'completed');
  check(await page.locator('#auth').isHidden(), 'token forgotten on reload');
  check(!page.url().includes(VIEWER), 'token in the URL');

  // A viewer may not pause: the API's refusal shows in the banner.
  await page.goto(`${URL_AUTH}/#/schedules`);
  await page.click('#schedules-body tr[data-workflow="tick"] button[data-action="pause"]');
  await page.waitForSelector('#banner:not([hidden])', { timeout: WAIT });
  const banner = await page.locator('#banner-text').textContent();
  check(/403|not allowed/i.test(banner), `banner: ${banner}`);
  log(`viewer pause refused: ${banner}`);

  await page.click('#signout');
  await page.waitForSelector('#auth:not([hidden])', { timeout: WAIT });
  check((await page.evaluate(() => sessionStorage.getItem('ratchet.token'))) === null, 'token kept after forget');
  await ctx.close();
  return problems;
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking'],
});
let rc = 0;
try {
  const problems = [...(await openPhase(browser)), ...(await authPhase(browser))];
  if (problems.length) {
    rc = 1;
    for (const p of problems) console.error(`dashboard.test: FAIL: ${p}`);
  } else {
    console.log('dashboard.test: ok');
  }
} catch (e) {
  rc = 1;
  console.error(`dashboard.test: FAIL: ${e.stack || e}`);
  if (current && !current.isClosed()) {
    await shot(current, 'dashboard-failure.png').catch(() => {});
    console.error(`dashboard.test: page at failure: ${current.url()}`);
  }
} finally {
  await browser.close();
}
process.exit(rc);
