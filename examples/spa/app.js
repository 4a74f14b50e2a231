// tokensmith single-page app example: plain JavaScript, no build step, no dependencies.
//
// The API must run with REFRESH_TOKEN_COOKIE=true and CORS_ALLOWED_ORIGINS listing this page's
// origin. Open index.html?api=http://localhost:8000 (the API's base URL; that is the default).
// Add &poll=1000 to call /api/me/ every second (to watch silent refreshes at work).

const params = new URLSearchParams(location.search);
const API = (params.get("api") || "http://localhost:8000").replace(/\/$/, "");
const POLL_MS = Number(params.get("poll") || 0);

// The access token lives in this variable only: gone on reload, never in storage.
let access = null;
let refreshTimer = null;
let pollTimer = null;
let refreshes = 0;

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

function signedIn() {
  $("login-form").hidden = true;
  $("account").hidden = false;
  document.body.dataset.state = "signed-in";
  status("Signed in. The access token is in memory; the refresh token is in an HttpOnly cookie.");
  clearInterval(pollTimer);
  if (POLL_MS > 0) pollTimer = setInterval(showMe, POLL_MS);
  return showMe();
}

function signedOut(message) {
  access = null;
  clearTimeout(refreshTimer);
  clearInterval(pollTimer);
  $("account").hidden = true;
  $("login-form").hidden = false;
  document.body.dataset.state = "signed-out";
  status(message || "Signed out.");
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").hidden = true;
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
  scheduleRefresh();
  await signedIn();
});

$("logout").addEventListener("click", async () => {
  // Blacklists the session server-side and clears the cookie.
  await api("/api/token/blacklist/", { method: "POST" });
  signedOut("Signed out.");
});

// On load (or reload) the access token is gone; the cookie may still hold a session.
(async () => {
  try {
    if (await refresh()) await signedIn();
    else signedOut("Not signed in.");
  } catch (error) {
    signedOut(`Cannot reach the API at ${API}: ${error.message}`);
  }
})();
