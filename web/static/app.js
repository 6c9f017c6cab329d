// The tally dashboard: plain JavaScript, no build step. Every call carries the bearer
// token kept in this tab's session storage; job progress arrives as Server-Sent Events.

const TOKEN_KEY = "tally.token";
const PAGE_SIZE = 10;
const MAX_STREAMS = 4; // browsers allow few connections per host; the rest refresh by polling
const REFRESH_MS = 15000;

const $ = (id) => document.getElementById(id);
// secrets: the ones the user revealed, by account id, in this page's memory only (never in
// storage), so that a refresh of the vault keeps them shown until the user hides them.
// armedCancels: jobs whose Cancel was clicked once, until when (rows are redrawn on progress).
const state = {
  jobsPages: [null], vaultPages: [null], vaultPage: null, streams: new Map(), timer: null, secrets: new Map(),
  armedCancels: new Map(),
};

class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `request failed (${status})`);
    this.status = status;
    this.code = error.code || "http_error";
    this.field = error.field;
    this.needed = error.needed;
    this.balance = error.balance;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${token()}`, ...(options.headers || {}) };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  if (response.status === 204) return null;
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const error = new ApiError(response.status, body);
    if (response.status === 401 && options.signOutOn401 !== false) signOut(error.message);
    throw error;
  }
  return body;
}

// ---------- formatting ----------

const numberFormat = new Intl.NumberFormat("en");
const fmt = (n) => numberFormat.format(n);
const shortId = (id) => id.slice(0, 8);

function ago(iso) {
  if (!iso) return "–";
  const seconds = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 60) return `${Math.round(seconds)}s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// ---------- messages ----------

function showBanner(message) {
  $("banner-text").textContent = message;
  $("banner").hidden = false;
}

function showFormError(id, message) {
  $(id).textContent = message;
  $(id).hidden = !message;
}

// Whole numbers standing alone in a server message (not parts of ids), written like the cards.
// (No lookbehind in the pattern: older Safari cannot parse one.)
const fmtNumbersIn = (text) =>
  text.replace(/(^|[^\w.-])(\d{4,})(?![\w.-])/g, (_, before, n) => before + fmt(Number(n)));

function describe(error) {
  if (!(error instanceof ApiError)) return "The server cannot be reached. Try again in a moment.";
  const { needed, balance } = error;
  if (error.code === "insufficient_credits" && Number.isFinite(needed) && Number.isFinite(balance)) {
    return `Not enough credits: this job needs ${fmt(needed)} credits; the balance is ${fmt(balance)}.`;
  }
  const message = fmtNumbersIn(error.message);
  const sentence = message.charAt(0).toUpperCase() + message.slice(1) + ".";
  return error.code === "insufficient_credits" ? `Not enough credits: ${sentence}` : sentence;
}

// ---------- cards ----------

// Failures are highlighted only when there are some: a zero is not an error.
const failuresClass = (n) => (n > 0 ? "bad" : "");

function setCard(name, value) {
  const node = $(`card-${name}`);
  if (name === "failures") node.classList.toggle("bad", failuresClass(value) !== "");
  const text = fmt(value);
  if (node.textContent !== text) {
    const changed = node.textContent !== "–";
    node.textContent = text;
    if (changed) flash(node.closest(".card"));
  }
}

function flash(card) {
  card.classList.add("changed");
  setTimeout(() => card.classList.remove("changed"), 1200);
}

async function refreshCards() {
  const [stats, credits] = await Promise.all([api("/api/stats"), api("/api/credits?limit=1")]);
  for (const name of ["requested", "successful", "failures", "business_centers"]) {
    setCard(name, stats[name]);
  }
  setCard("credits", credits.balance);
  // The vault's total is this card's business_centers: keep the pager's "of N" with it, and
  // fetch the page again when it had no account to show yet.
  const vault = state.vaultPage;
  if (vault && vault.total !== stats.business_centers) {
    if (vault.items.length === 0) refreshVault().catch(() => {});
    else showVault({ ...vault, total: stats.business_centers });
  }
  $("whoami").textContent = `user ${shortId(stats.user_id)}`;
}

// Stats are applied by the server shortly after a job finishes: look again a few times.
function refreshCardsSoon() {
  for (const delay of [300, 1000, 2500, 5000]) {
    setTimeout(() => refreshCards().catch(() => {}), delay);
  }
}

// ---------- jobs ----------

function progressCell(job) {
  const bar = el("div", { class: `bar ${job.status}` }, el("span"));
  bar.firstChild.style.width = `${Math.round(job.progress * 100)}%`;
  const done = job.successful + job.failures;
  const pct = el("span", { class: "pct", text: `${Math.round(job.progress * 100)}%` });
  pct.title = `${fmt(done)} of ${fmt(job.requested)} items`;
  return el("div", { class: "progress" }, bar, pct);
}

// The words shown for the server's codes, from its API description (each vocabulary
// schema's x-labels), so the dashboard keeps no copy of them; a code shows as is until then.
const words = { waiting: {} };

async function loadWords() {
  const response = await fetch("/openapi.json");
  if (!response.ok) return;
  const schemas = (await response.json()).components.schemas;
  words.waiting = schemas.WaitingReason?.["x-labels"] || {};
}

// Why a running job is slow: its provider pushes back, and when it may be called again.
function waitingNote(job) {
  if (!job.waiting) return null;
  const until = job.retry_at ? ` until ${new Date(job.retry_at).toLocaleTimeString()}` : "";
  const text = `waiting: ${words.waiting[job.waiting] || job.waiting}${until}`;
  return el("div", { class: "muted waiting", "data-waiting": job.waiting, text });
}

function statusCell(job) {
  const badge = el("span", { class: `badge ${job.status}`, text: job.status });
  const note = waitingNote(job);
  const cell = { class: "cell-status", "data-label": "Status" };
  return note ? el("td", cell, badge, note) : el("td", cell, badge);
}

function jobRow(job) {
  const row = el(
    "tr",
    { "data-job": job.id, "data-status": job.status },
    el("td", { "data-label": "Job" }, el("span", { class: "mono", text: shortId(job.id), title: job.id })),
    statusCell(job),
    el("td", { class: "cell-wide" }, progressCell(job)),
    el("td", { class: "num", "data-label": "Requested", text: fmt(job.requested) }),
    el("td", { class: "num", "data-label": "Successful", text: fmt(job.successful) }),
    el("td", {
      class: `num ${failuresClass(job.failures)}`.trim(), "data-label": "Failures", text: fmt(job.failures),
    }),
    el("td", { class: "muted", "data-label": "Submitted", text: ago(job.created_at), title: job.created_at }),
    el("td", { class: "actions cell-rest" }, cancelControl(job), downloadControl(job)),
  );
  if (job.error) row.title = job.error;
  return row;
}

// A job that is still queued or running can be cancelled (two clicks, like deleting).
// The first click arms the button for a few seconds, across redraws of its row.
function cancelControl(job) {
  if (isTerminal(job)) {
    const never = job.cancelled > 0 ? `${fmt(job.cancelled)} never attempted` : "";
    const late = job.note ? "cancel came too late: all attempted" : "";
    return el("span", { class: "muted", text: never || late, title: job.note || "" });
  }
  if (job.cancel_requested_at) return el("span", { class: "muted", text: "Cancelling…" });
  const armed = (state.armedCancels.get(job.id) || 0) > Date.now();
  const button = el("button", {
    class: `button danger small${armed ? " armed" : ""}`, type: "button",
    text: armed ? "Confirm" : "Cancel", "data-action": "cancel",
    title: "Stop this job: no new account is created (click again to confirm)",
  });
  button.addEventListener("click", () => cancelJob(job, button));
  return button;
}

// A finished job with accounts can be downloaded as CSV with secrets: an explicit POST.
function downloadControl(job) {
  if (!isTerminal(job) || job.successful === 0) return "";
  const button = el("button", {
    class: "button ghost small", type: "button", text: "Download", "data-action": "download",
    title: "Download this job's accounts with their secrets (CSV)",
  });
  button.addEventListener("click", () => downloadJob(job, button));
  return button;
}

async function downloadJob(job, button) {
  button.disabled = true;
  try {
    const response = await fetch(`/api/job/${job.id}/export`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token()}`, "Content-Type": "application/json" },
      body: JSON.stringify({ format: "csv", include: "secrets" }),
    });
    if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
    const link = el("a", { href: URL.createObjectURL(await response.blob()) });
    link.download = `accounts-${shortId(job.id)}.csv`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    await refreshExports();
  } catch (error) {
    showBanner(describe(error));
  } finally {
    button.disabled = false;
  }
}

async function refreshExports() {
  const page = await api("/api/exports?limit=5");
  const body = $("exports-table").querySelector("tbody");
  body.replaceChildren(...page.items.map((e) => el(
    "tr", { "data-export": e.id },
    el("td", { class: "muted", text: ago(e.started_at), title: e.started_at }),
    el("td", { text: e.job_id ? shortId(e.job_id) : "whole vault" }),
    el("td", { text: e.format }),
    el("td", { text: e.secrets ? "with secrets" : "no secrets" }),
    el("td", { class: "num", text: fmt(e.accounts) }),
    el("td", { text: e.status }),
  )));
  $("exports-panel").hidden = page.items.length === 0;
}

function armCancel(job, button) {
  state.armedCancels.set(job.id, Date.now() + 4000);
  button.classList.add("armed");
  button.textContent = "Confirm";
  setTimeout(() => {
    state.armedCancels.delete(job.id);
    const shown = document.querySelector(`tr[data-job="${job.id}"] [data-action="cancel"]`);
    if (shown) {
      shown.classList.remove("armed");
      shown.textContent = "Cancel";
    }
  }, 4000);
}

async function cancelJob(job, button) {
  if (!((state.armedCancels.get(job.id) || 0) > Date.now())) {
    armCancel(job, button);
    return;
  }
  state.armedCancels.delete(job.id);
  button.disabled = true;
  try {
    const latest = await api(`/api/job/${job.id}/cancel`, { method: "POST" });
    updateJob(latest);
    if (isTerminal(latest)) refreshCardsSoon();
    else follow(job.id);
  } catch (error) {
    showBanner(describe(error));
    await refreshJobs().catch(() => {});
  }
}

function updateJob(job) {
  const row = document.querySelector(`tr[data-job="${job.id}"]`);
  if (row) row.replaceWith(jobRow(job));
}

async function refreshJobs() {
  const page = await api(pageUrl("/api/jobs", state.jobsPages));
  const body = $("jobs-table").querySelector("tbody");
  body.replaceChildren(...page.items.map(jobRow));
  $("jobs-empty").hidden = page.total > 0;
  $("jobs-table").hidden = page.total === 0;
  setPager("jobs", page, state.jobsPages);
  for (const job of page.items) if (!isTerminal(job)) follow(job.id);
}

const TERMINAL = ["completed", "failed", "cancelled"];
const isTerminal = (job) => TERMINAL.includes(job.status);

// Follow one job's events over fetch (EventSource cannot send the Authorization header).
// The server ends a stream after a minute; follow reconnects until the job is terminal.
async function follow(jobId) {
  if (state.streams.has(jobId) || state.streams.size >= MAX_STREAMS) return;
  const controller = new AbortController();
  state.streams.set(jobId, controller);
  let terminal = false;
  let lastId = "";
  try {
    while (!terminal && !controller.signal.aborted) {
      const headers = { Authorization: `Bearer ${token()}` };
      if (lastId) headers["Last-Event-ID"] = lastId;
      const response = await fetch(`/api/job/${jobId}/events`, { headers, signal: controller.signal });
      if (!response.ok) return;
      await readEvents(response.body, (event, data, id) => {
        if (event === "end") terminal = true;
        if (event !== "status") return;
        lastId = id;
        updateJob(data);
        if (isTerminal(data)) {
          terminal = true;
          refreshCardsSoon();
          refreshVault().catch(() => {});
        }
      });
    }
  } catch (error) {
    if (error.name !== "AbortError") console.debug("event stream closed", error);
  } finally {
    state.streams.delete(jobId);
  }
}

async function readEvents(stream, onEvent) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      let data = "";
      let id = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
        else if (line.startsWith("id:")) id = line.slice(3).trim();
      }
      if (data) onEvent(event, JSON.parse(data), id);
    }
  }
}

function stopStreams() {
  for (const controller of state.streams.values()) controller.abort();
  state.streams.clear();
}

async function submitJob(event) {
  event.preventDefault();
  showFormError("submit-error", "");
  const input = $("count");
  input.classList.remove("invalid");
  const count = input.value.trim() === "" ? null : Number(input.value);
  const button = $("submit-button");
  button.disabled = true;
  try {
    const job = await api("/api/jobs", {
      method: "POST",
      body: { count },
      headers: { "Idempotency-Key": crypto.randomUUID() },
    });
    state.jobsPages = [null];
    await refreshJobs();
    follow(job.id);
    refreshCards().catch(() => {});
  } catch (error) {
    if (error instanceof ApiError && error.field === "count") input.classList.add("invalid");
    showFormError("submit-error", describe(error));
  } finally {
    button.disabled = false;
  }
}

// ---------- vault ----------

function vaultRow(account) {
  const remove = el("button", {
    class: "button danger small", type: "button", text: "Delete", "data-action": "delete",
  });
  remove.addEventListener("click", () => deleteAccount(account, remove));
  const secret = el("td", { class: "secret-cell cell-wide", "data-label": "Secret" });
  renderSecret(secret, account);
  return el(
    "tr",
    { "data-account": account.id },
    el("td", { class: "cell-wide", "data-label": "Username" }, el("span", { class: "mono", text: account.username })),
    secret,
    el("td", { "data-label": "External id" }, el("span", { class: "mono muted", text: account.external_id })),
    el("td", { "data-label": "Provider", text: account.provider }),
    el("td", { "data-label": "Job" }, el("span", { class: "mono muted", text: shortId(account.job_id) })),
    el("td", { class: "muted", "data-label": "Created", text: ago(account.created_at), title: account.created_at }),
    el("td", { class: "actions cell-rest" }, remove),
  );
}

// Deleting and revealing take two clicks: the first arms the button for a few seconds.
// Answers whether the button was armed already (the click is the confirmation).
function confirmed(button, label) {
  if (button.classList.contains("armed")) return true;
  button.classList.add("armed");
  button.textContent = "Confirm";
  setTimeout(() => {
    button.classList.remove("armed");
    button.textContent = label;
  }, 4000);
  return false;
}

async function deleteAccount(account, button) {
  if (!confirmed(button, "Delete")) return;
  button.disabled = true;
  try {
    await api(`/api/accounts/${account.id}`, { method: "DELETE" });
    state.secrets.delete(account.id);
    await refreshVault();
    refreshCardsSoon();
  } catch (error) {
    showBanner(describe(error));
    button.disabled = false;
  }
}

// The secret cell: a Reveal button, or the revealed secret with Copy and Hide.
function renderSecret(cell, account) {
  const secret = state.secrets.get(account.id);
  if (secret === undefined) {
    const reveal = el("button", {
      class: "button ghost small reveal", type: "button", text: "Reveal", "data-action": "reveal",
      title: "Show this account's secret (click again to confirm)",
    });
    reveal.addEventListener("click", () => revealSecret(account, reveal));
    cell.replaceChildren(reveal);
    return;
  }
  const code = el("code", { class: "secret", text: secret, "aria-label": `secret of ${account.username}` });
  const button = (text) =>
    el("button", { class: "button ghost small", type: "button", text, "data-action": text.toLowerCase() });
  const copy = button("Copy");
  copy.addEventListener("click", () => copySecret(secret, code, copy));
  const hide = button("Hide");
  hide.addEventListener("click", () => {
    state.secrets.delete(account.id);
    renderSecret(cell, account);
  });
  cell.replaceChildren(el("span", { class: "secret-box" }, code, copy, hide));
}

async function revealSecret(account, button) {
  if (!confirmed(button, "Reveal")) return;
  button.disabled = true;
  try {
    const answer = await api(`/api/accounts/${account.id}/reveal`, { method: "POST" });
    if (token()) state.secrets.set(account.id, answer.secret); // unless signed out meanwhile
  } catch (error) {
    showBanner(describe(error));
  }
  // The row as it is now: the vault may have been redrawn while the request was out.
  const cell = document.querySelector(`tr[data-account="${account.id}"] .secret-cell`);
  if (cell) renderSecret(cell, account);
}

async function copySecret(secret, code, button) {
  try {
    await navigator.clipboard.writeText(secret);
    button.textContent = "Copied";
  } catch {
    // No clipboard here (a page served over plain http from another host): select the text
    // so that the system's copy shortcut takes it.
    const range = document.createRange();
    range.selectNodeContents(code);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    button.textContent = "Selected";
  }
  setTimeout(() => (button.textContent = "Copy"), 1500);
}

async function refreshVault() {
  const page = await api(pageUrl("/api/accounts", state.vaultPages));
  if (page.items.length === 0 && state.vaultPages.length > 1) {
    state.vaultPages.pop();
    return refreshVault();
  }
  $("vault-table").querySelector("tbody").replaceChildren(...page.items.map(vaultRow));
  showVault(page);
}

// The total is counted once a job's outcome is applied to the stats, a moment after its
// accounts are stored: a page with accounts shows them even while its total says 0.
function showVault(page) {
  const empty = page.items.length === 0 && page.total === 0;
  $("vault-empty").hidden = !empty;
  $("vault-table").hidden = empty;
  state.vaultPage = page;
  setPager("vault", page, state.vaultPages);
}

// ---------- paging ----------

// Lists page by cursor: `pages` holds the cursor of each page seen so far (null for the
// first); "Older" follows the answer's next_cursor, "Newer" goes back one.
function pageUrl(path, pages) {
  const cursor = pages[pages.length - 1];
  const query = new URLSearchParams({ limit: PAGE_SIZE });
  if (cursor) query.set("cursor", cursor);
  return `${path}?${query}`;
}

// An empty list has no pager: the line under its panel says it is empty.
function setPager(name, page, pages) {
  const pager = document.querySelector(`[data-pager="${name}"]`);
  pager.hidden = page.total === 0;
  const first = (pages.length - 1) * PAGE_SIZE + 1;
  const last = first + page.items.length - 1;
  $(`${name}-page`).textContent = `${fmt(first)}–${fmt(last)} of ${fmt(page.total)}`;
  pager.querySelector('[data-page="prev"]').disabled = pages.length === 1;
  pager.querySelector('[data-page="next"]').disabled = !page.next_cursor;
  pager.dataset.next = page.next_cursor || "";
}

function bindPager(name, key, refresh) {
  const pager = document.querySelector(`[data-pager="${name}"]`);
  pager.addEventListener("click", (event) => {
    const direction = event.target.dataset && event.target.dataset.page;
    if (!direction) return;
    const pages = state[key];
    if (direction === "next" && pager.dataset.next) pages.push(pager.dataset.next);
    if (direction === "prev" && pages.length > 1) pages.pop();
    refresh().catch((error) => showBanner(describe(error)));
  });
}

// ---------- reconciliation report (admins only) ----------

async function refreshReport() {
  const me = await api("/api/me", { signOutOn401: false });
  if (!me.is_admin) {
    $("report-panel").hidden = true; // reports are for admins: never ask for one
    return;
  }
  let page;
  try {
    page = await api("/api/admin/reports?limit=1", { signOutOn401: false });
  } catch {
    $("report-panel").hidden = true;
    return;
  }
  const report = page && (page.items ? page.items[0] : page);
  $("report-panel").hidden = false;
  const body = $("report-body");
  if (!report) {
    body.replaceChildren(el("p", { class: "muted", text: "No report has run yet." }));
    return;
  }
  const drifts = report.drift_count || 0;
  const unrepaired = report.unrepaired ?? drifts;
  const pill = el("span", {
    class: `pill ${unrepaired ? "bad" : "ok"}`,
    text: drifts ? `${fmt(drifts)} drift${drifts === 1 ? "" : "s"} found` : "No drift",
  });
  const facts = [
    ["Report", `#${report.id}`],
    ["Ran", ago(report.started_at)],
    ["Users checked", fmt(report.users_checked ?? 0)],
    ["Repaired", fmt(report.repaired_count ?? 0)],
    ["Outbox backlog", fmt(report.outbox_backlog ?? 0)],
  ];
  const list = el("dl");
  for (const [term, value] of facts) list.append(el("dt", { text: term }), el("dd", { text: value }));
  body.replaceChildren(pill, list);
}

// ---------- sign in / out ----------

async function signIn(event) {
  event.preventDefault();
  const value = $("token").value.trim();
  if (!value) {
    showFormError("sign-in-error", "Enter your API token.");
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, value);
  try {
    await api("/api/stats", { signOutOn401: false });
  } catch (error) {
    sessionStorage.removeItem(TOKEN_KEY);
    showFormError("sign-in-error", error.status === 401 ? "That token is not valid." : describe(error));
    return;
  }
  $("token").value = "";
  showFormError("sign-in-error", "");
  await openDashboard();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.secrets.clear();
  $("vault-table").querySelector("tbody").replaceChildren(); // no revealed secret left behind
  stopStreams();
  clearInterval(state.timer);
  $("dashboard").hidden = true;
  $("whoami").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  showFormError("sign-in-error", message || "");
}

async function openDashboard() {
  $("sign-in").hidden = true;
  $("dashboard").hidden = false;
  $("whoami").hidden = false;
  $("sign-out").hidden = false;
  try {
    await Promise.all([
      refreshCards(), refreshJobs(), refreshVault(), refreshReport(), refreshExports(),
    ]);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) showBanner(describe(error));
  }
  clearInterval(state.timer);
  state.timer = setInterval(() => {
    if (document.hidden) return;
    Promise.all([refreshCards(), refreshJobs()]).catch(() => {});
  }, REFRESH_MS);
}

// A link such as `tally dev` prints carries the token in its fragment (#token=...), which the
// browser never sends to a server: keep it as a pasted token would be, then drop it from the
// address bar and the history entry so it is neither bookmarked nor shown.
function takeTokenFromFragment() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const value = (fragment.get("token") || "").trim();
  if (!fragment.has("token")) return;
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  history.replaceState(null, "", location.pathname + location.search);
}

async function main() {
  takeTokenFromFragment();
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => signOut(""));
  $("submit-form").addEventListener("submit", submitJob);
  $("banner-close").addEventListener("click", () => ($("banner").hidden = true));
  bindPager("jobs", "jobsPages", refreshJobs);
  bindPager("vault", "vaultPages", refreshVault);
  await loadWords().catch(() => {});
  if (token()) openDashboard();
  else $("sign-in").hidden = false;
}

main();
