// Browser tests: Debian's Chromium, driven by playwright-core, against a real tokensmith and the
// example SPA served from another origin. Run with `npm test` here (after `cargo build`);
// TOKENSMITH_BIN picks the binary. Screenshots go to target/browser-tests/.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createServer } from "node:http";
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname, extname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const BINARY = process.env.TOKENSMITH_BIN || join(ROOT, "target", "debug", "tokensmith");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const OUT = join(ROOT, "target", "browser-tests");
const PASSWORD = "correct horse battery";

const cleanups = [];
let browser, api, docsApi, spa, foreign;

function freePort() {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** A tokensmith on its own port and SQLite file, with one user `alice`, and the users `extraUsers`
 * lists as [name, ...flags of `user create`], all with the password PASSWORD. `settings` may be a
 * function of the API's base URL (for settings that name it). */
async function startTokensmith(settings, extraUsers = []) {
  const dir = mkdtempSync(join(tmpdir(), "tokensmith-browser-"));
  const port = await freePort();
  const base = `http://localhost:${port}`;
  const env = {
    PATH: process.env.PATH,
    DATABASE_URL: `sqlite://${dir}/browser.db?mode=rwc`,
    LISTEN_ADDR: `127.0.0.1:${port}`,
    RUST_LOG: "warn",
    ...(typeof settings === "function" ? settings(base) : settings),
  };
  const created = spawnSync(BINARY, ["user", "create", "alice", "--email", "alice@example.com", "--password-stdin"], { env, input: PASSWORD, cwd: dir });
  assert.equal(created.status, 0, String(created.stderr));
  for (const [name, ...flags] of extraUsers) {
    const extra = spawnSync(BINARY, ["user", "create", name, ...flags, "--password-stdin"], { env, input: PASSWORD, cwd: dir });
    assert.equal(extra.status, 0, String(extra.stderr));
  }
  const server = spawn(BINARY, ["serve"], { env, cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
  cleanups.push(() => { server.kill(); rmSync(dir, { recursive: true, force: true }); });
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) return base;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("tokensmith did not start");
}

/** Serves examples/spa/ on its own port: another origin than the API. */
async function serveSpa() {
  const port = await freePort();
  const types = { ".html": "text/html", ".js": "text/javascript" };
  const server = createServer((req, res) => {
    const name = new URL(req.url, "http://x").pathname.replace(/^\/$/, "/index.html");
    try {
      const body = readFileSync(join(ROOT, "examples", "spa", name.replace(/\.\./g, "")));
      res.writeHead(200, { "Content-Type": types[extname(name)] || "application/octet-stream" });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  cleanups.push(() => server.close());
  return `http://localhost:${port}`;
}

before(async () => {
  mkdirSync(OUT, { recursive: true });
  spa = await serveSpa();
  foreign = await serveSpa();
  api = await startTokensmith({
    REFRESH_TOKEN_COOKIE: "true",
    CORS_ALLOWED_ORIGINS: spa,
    ACCESS_TOKEN_LIFETIME: "2s",
  });
  // `root` may use the admin API (staff) and do everything in it (superuser).
  docsApi = await startTokensmith({}, [["root", "--staff", "--superuser"]]);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});

after(async () => {
  await browser?.close();
  for (const cleanup of cleanups) cleanup();
});

const app = (origin = spa, base = api) => `${origin}/index.html?api=${encodeURIComponent(base)}&poll=1000`;

async function signIn(page) {
  await page.goto(app());
  await page.waitForSelector("body[data-state=signed-out]");
  await page.fill("#username", "alice");
  await page.fill("#password", PASSWORD);
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("body[data-state=signed-in]");
  await page.waitForFunction(() => document.getElementById("me-username").textContent === "alice");
}

async function refreshCookie(context) {
  // Cookies are matched by path too: ask for the cookie's own path.
  return (await context.cookies(`${api}/api/token/`)).find((c) => c.name === "refresh_token");
}

test("login shows /api/me/, and JavaScript cannot see the refresh token", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page);
  assert.equal(await page.textContent("#me-email"), "alice@example.com");
  assert.ok(!(await page.evaluate(() => document.cookie)).includes("refresh_token"));
  const cookie = await refreshCookie(context);
  assert.ok(cookie, "the browser holds the refresh cookie");
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, "Strict");
  assert.equal(cookie.path, "/api/token/");
  assert.equal(await page.evaluate(() => JSON.stringify(localStorage) + JSON.stringify(sessionStorage)), "{}{}");
  await page.screenshot({ path: join(OUT, "spa.png"), fullPage: true });
  await context.close();
});

test("with 2 s access tokens the app keeps calling /api/me/ after 5 s: it refreshed, and the refresh token rotated", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page);
  const first = (await refreshCookie(context)).value;
  const callsBefore = Number(await page.getAttribute("body", "data-me-calls"));
  await page.waitForTimeout(5000);
  assert.equal(await page.getAttribute("body", "data-state"), "signed-in");
  const callsAfter = Number(await page.getAttribute("body", "data-me-calls"));
  assert.ok(callsAfter >= callsBefore + 3, `only ${callsAfter - callsBefore} /api/me/ calls in 5 s`);
  assert.ok(Number(await page.textContent("#refresh-count")) >= 2, "no silent refreshes");
  assert.notEqual((await refreshCookie(context)).value, first, "the refresh token did not rotate");
  await context.close();
});

test("a reload keeps the session; sign-out ends it, also after a reload", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page);
  await page.reload();
  await page.waitForSelector("body[data-state=signed-in]");
  await page.waitForFunction(() => document.getElementById("me-username").textContent === "alice");
  await page.click("#logout");
  await page.waitForSelector("body[data-state=signed-out]");
  assert.equal(await refreshCookie(context), undefined, "sign-out did not clear the cookie");
  await page.reload();
  await page.waitForSelector("body[data-state=signed-out]");
  await context.close();
});

test("a page on an origin not allowed cannot refresh", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page);
  const before = (await refreshCookie(context)).value;
  const attempts = [];
  const evil = await context.newPage();
  evil.on("request", (r) => { if (r.url().includes("/api/token/refresh/")) attempts.push(r.url()); });
  await evil.goto(app(foreign));
  await evil.waitForSelector("body[data-state=signed-out]");
  assert.ok(attempts.length > 0, "the foreign page did not even try");
  // The server refused it (403, Origin check), so nothing rotated...
  assert.equal((await refreshCookie(context)).value, before, "a foreign origin rotated the refresh token");
  // ...and the page could not read an answer anyway (CORS).
  const readable = await evil.evaluate(async (url) => {
    try { await fetch(url, { method: "POST", credentials: "include" }); return true; } catch { return false; }
  }, `${api}/api/token/refresh/`);
  assert.equal(readable, false);
  // The session itself is untouched: the allowed page still refreshes.
  await page.reload();
  await page.waitForSelector("body[data-state=signed-in]");
  await context.close();
});

test("two tabs refreshing at once both stay signed in", async () => {
  const context = await browser.newContext();
  const first = await context.newPage();
  await signIn(first);
  const second = await context.newPage();
  await second.goto(app());
  await second.waitForSelector("body[data-state=signed-in]");
  for (let round = 0; round < 3; round++) {
    await Promise.all([first.reload(), second.reload()]);
    await Promise.all([
      first.waitForSelector("body[data-state=signed-in]"),
      second.waitForSelector("body[data-state=signed-in]"),
    ]);
  }
  await context.close();
});

test("/docs lists every operation, and Try it out on /api/token/ returns a pair", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${docsApi}/docs/`);
  await page.waitForSelector(".opblock");
  const document = await (await fetch(`${docsApi}/openapi.json`)).json();
  const operations = Object.values(document.paths).reduce((n, item) => n + Object.keys(item).length, 0);
  assert.equal(await page.locator(".opblock").count(), operations);
  const obtain = page.locator(".opblock-post", { has: page.locator('[data-path="/api/token/"]') });
  await obtain.locator(".opblock-summary").click();
  await obtain.locator("button.try-out__btn").click();
  await obtain.locator("textarea.body-param__text").fill(JSON.stringify({ username: "alice", password: PASSWORD }));
  await obtain.locator("button.execute").click();
  const status = obtain.locator(".live-responses-table tr.response .response-col_status").first();
  await status.waitFor();
  assert.equal((await status.textContent()).trim(), "200");
  const body = await obtain.locator(".live-responses-table tr.response .response-col_description pre").first().textContent();
  assert.ok(body.includes('"access"') && body.includes('"refresh"'), body);
  await page.screenshot({ path: join(OUT, "docs.png"), fullPage: true });
  await context.close();
});

test("/docs: Authorize with a staff token, and Try it out on GET /api/admin/users/ lists the users", async () => {
  const login = await fetch(`${docsApi}/api/token/`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: "root", password: PASSWORD }),
  });
  assert.equal(login.status, 200);
  const { access } = await login.json();
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${docsApi}/docs/`);
  await page.waitForSelector(".opblock");
  // The page's own Authorize dialog: paste the token into the bearer field, authorize, close.
  await page.locator(".auth-wrapper button.authorize").click();
  const dialog = page.locator(".dialog-ux .modal-ux");
  await dialog.locator("input").first().fill(access);
  await dialog.locator("button.authorize").click();
  await dialog.locator("button.btn-done").click();
  await dialog.waitFor({ state: "detached" });
  const list = page.locator(".opblock-get", { has: page.locator('[data-path="/api/admin/users/"]') });
  await list.locator(".opblock-summary").click();
  await list.locator("button.try-out__btn").click();
  await list.locator("button.execute").click();
  const status = list.locator(".live-responses-table tr.response .response-col_status").first();
  await status.waitFor();
  assert.equal((await status.textContent()).trim(), "200");
  const body = JSON.parse(await list.locator(".live-responses-table tr.response .response-col_description pre").first().textContent());
  assert.deepEqual(body.results.map((u) => u.username).sort(), ["alice", "root"]);
  assert.equal(body.results.find((u) => u.username === "root").is_superuser, true);
  await page.screenshot({ path: join(OUT, "docs-admin.png"), fullPage: true });
  await context.close();
});

// ---- Self-service: sign-up, "Forgot password?", the mailed link --------------------------------

/** A real SMTP server: tests/python/smtp_sink.py (aiosmtpd) in target/test-venv, which `.ci/run`
 * builds in an earlier step (so does `cargo test --test api python::`). `next()` resolves with the
 * next message received: {from, to: [...], data: the message as sent}. */
async function startMailSink() {
  const python = join(ROOT, "target", "test-venv", "bin", "python");
  assert.ok(existsSync(python), "no target/test-venv: build it with `cargo test --test api -- --exact python::the_venv_holds_exactly_the_pinned_requirements`");
  // It exits when its standard input closes: with this process, whatever ends it.
  const sink = spawn(python, [join(ROOT, "tests", "python", "smtp_sink.py")], { stdio: ["pipe", "pipe", "inherit"] });
  cleanups.push(() => { sink.stdin.end(); sink.kill(); });
  const messages = [];
  const waiting = [];
  let announced;
  const listening = new Promise((resolve, reject) => {
    announced = resolve;
    sink.on("exit", (code) => reject(new Error(`the SMTP server exited (${code})`)));
  });
  let buffer = "";
  sink.stdout.setEncoding("utf8");
  sink.stdout.on("data", (chunk) => {
    buffer += chunk;
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + 1);
      const port = line.match(/^listening on (\d+)$/);
      if (port) announced(Number(port[1]));
      else if (line.trim()) messages.push(JSON.parse(line));
    }
    while (messages.length && waiting.length) waiting.shift()(messages.shift());
  });
  return {
    port: await listening,
    next: () => new Promise((resolve) => (messages.length ? resolve(messages.shift()) : waiting.push(resolve))),
  };
}

/** The headers and the decoded text of a single-part text/plain mail. */
function parseMail(raw) {
  const text = raw.replace(/\r\n/g, "\n");
  const split = text.indexOf("\n\n");
  const headers = {};
  for (const line of text.slice(0, split).replace(/\n[ \t]+/g, " ").split("\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = text.slice(split + 2);
  const encoding = (headers["content-transfer-encoding"] || "7bit").toLowerCase();
  if (encoding === "base64") body = Buffer.from(body.replace(/\s+/g, ""), "base64").toString("utf8");
  if (encoding === "quoted-printable") {
    const bytes = body.replace(/=\n/g, "").replace(/=([0-9A-F]{2})/gi, (_, hex) => String.fromCharCode(parseInt(hex, 16)));
    body = Buffer.from(bytes, "latin1").toString("utf8");
  }
  return { headers, body };
}

/** Fills and submits the sign-in form; the caller waits for what should follow. */
async function submitSignIn(page, username, password) {
  await page.fill("#username", username);
  await page.fill("#password", password);
  await page.click("#login-form button[type=submit]");
}

test("without ALLOW_REGISTRATION the app offers no sign-up", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(app());
  await page.waitForSelector("body[data-registration=off]");
  assert.equal(await page.isVisible("#show-register"), false);
  await context.close();
});

test("a person signs up, signs in, forgets the password, follows the mailed link, and signs in with the new one", async () => {
  const mail = await startMailSink();
  const selfService = await startTokensmith((base) => ({
    REFRESH_TOKEN_COOKIE: "true",
    CORS_ALLOWED_ORIGINS: spa,
    ALLOW_REGISTRATION: "true",
    SMTP_URL: `smtp://127.0.0.1:${mail.port}`,
    EMAIL_FROM: "tokensmith <noreply@example.com>",
    // The SPA is told its API in the query; the token rides in the fragment, which no server sees.
    PASSWORD_RESET_URL: `${spa}/index.html?api=${encodeURIComponent(base)}#reset={token}`,
  }));
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(app(spa, selfService));
  await page.waitForSelector("body[data-registration=offered]");

  // Sign up: Django's policy message appears under the password field, then the account is made.
  await page.click("#show-register");
  await page.fill("#register-username", "bob");
  await page.fill("#register-email", "bob@example.com");
  await page.fill("#register-password", "password");
  await page.click("#register-form button[type=submit]");
  const policy = page.locator('#register-form .field-error[data-for="password"]');
  await policy.waitFor();
  assert.match(await policy.textContent(), /This password is too common\./);
  await page.screenshot({ path: join(OUT, "spa-register-policy.png"), fullPage: true });
  const first = "maple syrup on pancakes";
  await page.fill("#register-password", first);
  await page.click("#register-form button[type=submit]");
  await page.waitForSelector("body[data-screen=login]");
  assert.equal(await page.textContent("#login-notice"), "Account created, you can sign in.");

  // Sign in, sign out.
  await submitSignIn(page, "bob", first);
  await page.waitForSelector("body[data-state=signed-in]");
  await page.waitForFunction(() => document.getElementById("me-email").textContent === "bob@example.com");
  await page.click("#logout");
  await page.waitForSelector("body[data-state=signed-out]");

  // Forgot password: the mail arrives at the SMTP server, to bob, with a link back to the SPA.
  await page.click("#show-forgot");
  await page.fill("#forgot-email", "bob@example.com");
  await page.click("#forgot-form button[type=submit]");
  await page.waitForSelector("body[data-screen=login]");
  assert.equal(await page.textContent("#login-notice"), "If that address has an account, a link is on its way.");
  await page.screenshot({ path: join(OUT, "spa-forgot-sent.png"), fullPage: true });
  const message = await mail.next();
  assert.deepEqual(message.to, ["bob@example.com"]);
  const { body } = parseMail(message.data);
  const link = body.match(/https?:\/\/\S+#reset=\S+/)?.[0];
  assert.ok(link && link.startsWith(`${spa}/`), `no link to the SPA in the mail:\n${body}`);

  // The link opens the reset screen; the token leaves the address bar at once.
  await page.goto(link);
  await page.waitForSelector("body[data-screen=reset]");
  assert.ok(!page.url().includes("#reset"), page.url());
  await page.fill("#reset-password", "80741296");
  await page.click("#reset-form button[type=submit]");
  const weak = page.locator('#reset-form .field-error[data-for="new_password"]');
  await weak.waitFor();
  assert.match(await weak.textContent(), /This password is entirely numeric\./);
  await page.screenshot({ path: join(OUT, "spa-reset-policy.png"), fullPage: true });
  const second = "blueberry waffles at dawn";
  await page.fill("#reset-password", second);
  await page.click("#reset-form button[type=submit]");
  await page.waitForSelector("body[data-screen=login]");
  assert.match(await page.textContent("#login-notice"), /password has been changed/);

  // The old password fails; the new one works.
  await submitSignIn(page, "bob", first);
  await page.waitForSelector("#login-error:not([hidden])");
  assert.equal(await page.getAttribute("body", "data-state"), "signed-out");
  await submitSignIn(page, "bob", second);
  await page.waitForSelector("body[data-state=signed-in]");
  await page.waitForFunction(() => document.getElementById("me-username").textContent === "bob");
  await page.screenshot({ path: join(OUT, "spa-after-reset.png"), fullPage: true });

  // The link worked once: followed again, it says so and points to a new one.
  const again = await context.newPage();
  await again.goto(link);
  await again.waitForSelector("body[data-screen=reset]");
  await again.fill("#reset-password", "another fine password");
  await again.click("#reset-form button[type=submit]");
  const refused = again.locator("#reset-form .form-error");
  await refused.waitFor();
  assert.match(await refused.textContent(), /Ask for a new link/);
  await again.screenshot({ path: join(OUT, "spa-reset-link-used.png"), fullPage: true });
  await context.close();
});
