// tokensmith single-page app example: plain JavaScript, no build step, no dependencies.
//
// The API must run with REFRESH_TOKEN_COOKIE=true and CORS_ALLOWED_ORIGINS listing this page's
// origin. Open index.html?api=http://localhost:8000 (the API's base URL; that is the default).
// Add &poll=1000 to call /api/me/ every second (to watch silent refreshes at work).
//
// Self-service: "Create an account" appears when the API runs with ALLOW_REGISTRATION=true.
// "Forgot password?" needs SMTP_URL and EMAIL_FROM, and PASSWORD_RESET_URL pointing back here
// with the token in the fragment, e.g. http://localhost:3000/index.html?api=http://localhost:8000#reset={token}
// (a fragment never reaches a server, so the token stays out of every access log).

const params = new URLSearchParams(location.search);
const API = (params.get("api") || "http://localhost:8000").replace(/\/$/, "");
const POLL_MS = Number(params.get("poll") || 0);

// The access token lives in this variable only: gone on reload, never in storage.
let access = null;
let refreshTimer = null;
let pollTimer = null;
let refreshes = 0;
// A password-reset token from the mailed link: in memory only, like the access token.
let resetToken = null;

const $ = (id) => document.getElementById(id);
const status = (text) => { $("status").textContent = text; };

function expiresInMs(token) {
  const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  return payload.exp * 1000 - Date.now();
}

// Every call sends credentials so the browser attaches the refresh cookie where it applies
// (only /api/token/… — the cookie's path).
function api(path, options = {}) {
  return fetch(API + path, { credentials: "include", ...options });
}

// POSTs JSON; the body of the answer is {} when it is not JSON.
async function postJson(path, body) {
  const response = await api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  return { response, data };
}

// Exchanges the refresh cookie for a new access token (and a new cookie). Two tabs may race:
// the loser gets 401 for a token the winner just rotated; the browser already holds the
// winner's cookie, so one retry a moment later succeeds (the server's reuse grace keeps the
// session alive meanwhile).
async function refresh(retry = true) {
  const response = await api("/api/token/refresh/", { method: "POST" });
  if (response.ok) {
    const body = await response.json();
    access = body.access;
    refreshes += 1;
    $("refresh-count").textContent = String(refreshes);
    scheduleRefresh();
    return true;
  }
  if (response.status === 401 && retry) {
    await new Promise((resolve) => setTimeout(resolve, 300 + Math.random() * 300));
    return refresh(false);
  }
  return false;
}

// Refreshes before the access token expires: at half its remaining life.
function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(async () => {
    if (!(await refresh())) signedOut("Your session ended.");
  }, Math.max(500, expiresInMs(access) / 2));
}

// Calls the API with the access token; on a 401 refreshes once and retries.
async function authorized(path, options = {}) {
  const send = () => api(path, { ...options, headers: { ...(options.headers || {}), Authorization: `Bearer ${access}` } });
  let response = await send();
  if (response.status === 401 && (await refresh())) response = await send();
  return response;
}

async function showMe() {
  const response = await authorized("/api/me/");
  if (!response.ok) return signedOut("Your session ended.");
  const me = await response.json();
  $("me-username").textContent = me.username;
  $("me-email").textContent = me.email || "—";
  $("me-checked").textContent = new Date().toLocaleTimeString();
  document.body.dataset.meCalls = String(Number(document.body.dataset.meCalls || 0) + 1);
}

// One screen at a time: a form, or the signed-in account.
const SCREENS = ["login-form", "register-form", "forgot-form", "reset-form", "account"];

function show(screen) {
  for (const id of SCREENS) $(id).hidden = id !== screen;
  document.body.dataset.screen = screen.replace(/-form$/, "");
}

function signedIn() {
  show("account");
  document.body.dataset.state = "signed-in";
  status("Signed in. The access token is in memory; the refresh token is in an HttpOnly cookie.");
  clearInterval(pollTimer);
  if (POLL_MS > 0) pollTimer = setInterval(showMe, POLL_MS);
  return showMe();
}

// The sign-in form, with a notice ("Account created, …") when given.
function showSignIn(notice) {
  $("login-error").hidden = true;
  $("login-notice").textContent = notice || "";
  $("login-notice").hidden = !notice;
  show("login-form");
}

// Drops the access token and stops the timers that use it.
function forgetSession() {
  access = null;
  clearTimeout(refreshTimer);
  clearInterval(pollTimer);
}

function signedOut(message, notice) {
  forgetSession();
  showSignIn(notice);
  document.body.dataset.state = "signed-out";
  status(message || "Signed out.");
}

function clearErrors(form) {
  for (const slot of form.querySelectorAll(".error")) {
    slot.textContent = "";
    slot.hidden = true;
  }
}

// DRF's errors: {"password": ["This password is too short. …"]} goes under the password field;
// whatever has no field here ({"detail": …}, a bad reset token) goes under the form. Always as
// text, never as HTML.
function showErrors(form, body, fallback) {
  clearErrors(form);
  const general = [];
  for (const [field, messages] of Object.entries(body || {})) {
    const text = [].concat(messages).map(String).join(" ");
    const slot = [...form.querySelectorAll(".field-error")].find((p) => p.dataset.for === field);
    if (slot) {
      slot.textContent = text;
      slot.hidden = false;
    } else {
      general.push(text);
    }
  }
  if (general.length === 0 && form.querySelector(".field-error:not([hidden])")) return;
  const formError = form.querySelector(".form-error");
  formError.textContent = general.join(" ") || fallback;
  formError.hidden = false;
}

// A form's submit: no page load, no double submits, and an unreachable API said so.
function onSubmit(form, handler) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await handler(form);
    } catch (error) {
      showErrors(form, {}, `Cannot reach the API at ${API}: ${error.message}`);
    } finally {
      button.disabled = false;
    }
  });
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").hidden = true;
  $("login-notice").hidden = true;
  const response = await api("/api/token/", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: $("username").value, password: $("password").value }),
  });
  const body = await response.json();
  if (!response.ok) {
    $("login-error").textContent = body.detail || "Sign-in failed.";
    $("login-error").hidden = false;
    return;
  }
  access = body.access;
  // Not left in the form for whoever uses this screen after sign-out.
  $("password").value = "";
  scheduleRefresh();
  await signedIn();
});

$("logout").addEventListener("click", async () => {
  // Blacklists the session server-side and clears the cookie.
  await api("/api/token/blacklist/", { method: "POST" });
  signedOut("Signed out.");
});

$("show-register").addEventListener("click", () => {
  clearErrors($("register-form"));
  show("register-form");
  $("register-username").focus();
});

$("show-forgot").addEventListener("click", () => {
  clearErrors($("forgot-form"));
  $("forgot-email").value = "";
  show("forgot-form");
  $("forgot-email").focus();
});

for (const back of document.querySelectorAll("button.back")) {
  back.addEventListener("click", () => showSignIn());
}

onSubmit($("register-form"), async (form) => {
  const account = { username: $("register-username").value, password: $("register-password").value };
  // Email is optional: left out rather than sent empty.
  if ($("register-email").value) account.email = $("register-email").value;
  const { response, data } = await postJson("/api/register/", account);
  if (response.status === 404) {
    $("show-register").hidden = true;
    document.body.dataset.registration = "off";
    return showErrors(form, {}, "This server does not take sign-ups.");
  }
  if (!response.ok) return showErrors(form, data, "Sign-up failed.");
  form.reset();
  $("username").value = data.username || account.username;
  $("password").value = "";
  showSignIn("Account created, you can sign in.");
});

// The answer is the same whether or not the address has an account: the server does not tell.
onSubmit($("forgot-form"), async (form) => {
  const { response, data } = await postJson("/api/password/reset/", { email: $("forgot-email").value });
  if (response.status === 404) return showErrors(form, {}, "This server does not reset passwords by email.");
  if (!response.ok) return showErrors(form, data, "Could not ask for a reset link.");
  form.reset();
  showSignIn("If that address has an account, a link is on its way.");
});

onSubmit($("reset-form"), async (form) => {
  const { response, data } = await postJson("/api/password/reset/confirm/", {
    token: resetToken,
    new_password: $("reset-password").value,
  });
  if (!response.ok) {
    showErrors(form, data, "The password could not be reset.");
    // A used, expired or mangled link ({"token": […]}) cannot be retried: only a new link helps.
    if ("token" in data) form.querySelector(".form-error").textContent += " Ask for a new link with “Forgot password?”.";
    return;
  }
  resetToken = null;
  form.reset();
  // The reset ended every session, this browser's included.
  signedOut("Not signed in.", "Your password has been changed. Sign in with the new one.");
});

// The mailed link ends in #reset=<token>. The token is taken into memory and removed from the
// address bar and the history at once, so it is not left behind for the next person at this
// screen, nor in a bookmark.
function takeResetToken() {
  const match = location.hash.match(/^#reset=([^&]+)$/);
  if (!match) return false;
  history.replaceState(null, "", location.pathname + location.search);
  try {
    resetToken = decodeURIComponent(match[1]);
  } catch {
    resetToken = match[1];
  }
  // The reset will end every session anyway; this page stops using its own now.
  forgetSession();
  clearErrors($("reset-form"));
  $("reset-password").value = "";
  document.body.dataset.state = "signed-out";
  show("reset-form");
  status("Choose a new password.");
  return true;
}

// A link pasted into a tab that already shows this page changes only the fragment.
window.addEventListener("hashchange", takeResetToken);

// Sign-up is offered only when the API takes it: with ALLOW_REGISTRATION off, POST
// /api/register/ is 404. The probe's fields are present (a missing one is 400 before the server
// looks at the setting) but can never make an account: "!" is no username and "0" is entirely
// numeric, so with registration on the answer is 400, and nothing is created or counted.
async function offerRegistration() {
  let offered = false;
  try {
    offered = (await postJson("/api/register/", { username: "!", password: "0" })).response.status !== 404;
  } catch {}
  $("show-register").hidden = !offered;
  document.body.dataset.registration = offered ? "offered" : "off";
}

// On load (or reload) the access token is gone; the cookie may still hold a session.
(async () => {
  offerRegistration();
  if (takeResetToken()) return;
  try {
    if (await refresh()) await signedIn();
    else signedOut("Not signed in.");
  } catch (error) {
    signedOut(`Cannot reach the API at ${API}: ${error.message}`);
  }
})();
