// The console's one page: HTML, CSS and plain JavaScript, shipped in the binary (no CDN, no
// build step, works offline). Every value from the state is put in with textContent, never
// as HTML. Statuses are words, not only colours.

enum ConsolePage {
    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>paybridge console</title>
<style>
  :root { --fg:#1d232a; --muted:#5b6570; --line:#d8dde3; --bg:#f6f7f9; --ok:#0a6b2d; --bad:#a3161b; --warn:#8a5a00; --accent:#1f4fbf; }
  * { box-sizing: border-box; }
  body { margin:0; font:15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
  header { display:flex; flex-wrap:wrap; align-items:center; gap:.5rem 1rem; padding:.6rem 1rem; background:#fff; border-bottom:1px solid var(--line); }
  header h1 { font-size:1.05rem; margin:0; }
  nav { display:flex; flex-wrap:wrap; gap:.25rem; }
  nav a { padding:.3rem .6rem; border-radius:4px; color:var(--accent); text-decoration:none; }
  nav a.current { background:var(--accent); color:#fff; }
  #who { margin-left:auto; color:var(--muted); font-size:.9rem; }
  main { padding:1rem; max-width:1200px; margin:0 auto; }
  section { background:#fff; border:1px solid var(--line); border-radius:6px; padding:.8rem 1rem; margin-bottom:1rem; }
  h2 { font-size:1rem; margin:.1rem 0 .6rem; }
  .scroll { overflow-x:auto; }
  table { border-collapse:collapse; width:100%; font-size:.92rem; }
  th, td { text-align:left; padding:.35rem .5rem; border-bottom:1px solid var(--line); vertical-align:top; }
  th { color:var(--muted); font-weight:600; white-space:nowrap; }
  .word { font-weight:600; }
  .ok { color:var(--ok); } .bad { color:var(--bad); } .warn { color:var(--warn); }
  .ok::before { content:"● "; } .bad::before { content:"▲ "; } .warn::before { content:"◆ "; }
  button { font:inherit; padding:.35rem .8rem; border:1px solid var(--accent); background:var(--accent); color:#fff; border-radius:4px; cursor:pointer; }
  button.secondary { background:#fff; color:var(--accent); }
  button:disabled { opacity:.45; cursor:not-allowed; }
  input[type=text], input[type=password] { font:inherit; padding:.35rem .5rem; border:1px solid var(--line); border-radius:4px; min-width:16rem; max-width:100%; }
  form.inline { display:flex; flex-wrap:wrap; gap:.5rem; align-items:center; }
  .muted { color:var(--muted); } .mono { font-family:ui-monospace, Menlo, monospace; font-size:.85rem; word-break:break-all; }
  #message { margin:.5rem 0; }
  .notice { padding:.5rem .8rem; border-radius:4px; background:#eef3ff; border:1px solid #c9d6f5; }
  .error { padding:.5rem .8rem; border-radius:4px; background:#fdecec; border:1px solid #f2b8ba; }
  @media (max-width: 640px) { main { padding:.5rem; } section { padding:.6rem; } input[type=text], input[type=password] { min-width:0; width:100%; } }
</style>
</head>
<body>
<header>
  <h1>paybridge</h1>
  <nav id="nav" hidden>
    <a href="#overview" data-page="overview">Overview</a>
    <a href="#payment" data-page="payment">Payment</a>
    <a href="#dead" data-page="dead">Dead letters</a>
    <a href="#endpoints" data-page="endpoints">Endpoints</a>
  </nav>
  <span id="who"></span>
</header>
<main>
  <div id="message" role="status" aria-live="polite"></div>
  <section id="signin" hidden>
    <h2>Sign in</h2>
    <form id="signin-form" class="inline">
      <label for="token">Token</label>
      <input id="token" name="token" type="password" autocomplete="current-password" required>
      <button type="submit" id="signin-button">Sign in</button>
    </form>
    <p class="muted">An admin token from the config (<span class="mono">admin.tokens</span>): a <b>read</b> token sees everything, an <b>operate</b> token may also act.</p>
  </section>
  <div id="page"></div>
</main>
<script>
"use strict";
let session = null, current = "overview", refreshTimer = null, stream = null;
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}
function when(text) {
  if (!text) return "–";
  const date = new Date(text), seconds = Math.round((Date.now() - date.getTime()) / 1000);
  const ago = seconds < 60 ? seconds + " s ago" : seconds < 3600 ? Math.round(seconds / 60) + " min ago" : seconds < 86400 ? Math.round(seconds / 3600) + " h ago" : Math.round(seconds / 86400) + " d ago";
  return date.toISOString().replace("T", " ").slice(0, 19) + " UTC (" + ago + ")";
}
function word(text, tone) { return el("span", { class: "word " + tone, text: text }); }
function stateWord(state) { return word(state, { delivered: "ok", pending: "warn", failing: "bad", dead: "bad" }[state] || ""); }
function healthWord(health) { return word(health, { ok: "ok", failing: "bad", disabled: "warn" }[health] || ""); }
function table(headers, rows) {
  return el("div", { class: "scroll" }, el("table", {}, el("thead", {}, el("tr", {}, headers.map(h => el("th", { text: h })))), el("tbody", {}, rows)));
}
function say(text, kind) { const box = $("message"); box.replaceChildren(text ? el("div", { class: kind || "notice", text: text }) : ""); }
const canAct = () => session && session.role === "operate";

async function api(path, options) {
  const init = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
  if (init.method === "POST") { init.headers["Content-Type"] = "application/json"; if (session && session.csrf) init.headers["X-CSRF-Token"] = session.csrf; }
  const response = await fetch(path, init);
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (response.status === 401 && path !== "/console/session") { showSignIn("Your session ended: sign in again."); throw new Error("signed out"); }
  if (!response.ok) throw new Error((body && body.error && body.error.message) || ("HTTP " + response.status));
  return body;
}
const post = (path, body) => api(path, { method: "POST", body: JSON.stringify(body || {}) });

function showSignIn(text) {
  session = null; if (stream) { stream.close(); stream = null; }
  $("nav").hidden = true; $("signin").hidden = false; $("page").replaceChildren(); $("who").textContent = "";
  say(text || "", text ? "error" : "notice");
}
async function signIn(event) {
  event.preventDefault();
  try {
    const response = await fetch("/console/session", { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token: $("token").value }) });
    const body = await response.json();
    if (!response.ok) { say((body.error && body.error.message) || "Sign-in refused", "error"); return; }
    $("token").value = ""; start(body);
  } catch (e) { say("Cannot reach paybridge: " + e.message, "error"); }
}
function start(identity) {
  session = identity; $("signin").hidden = true; $("nav").hidden = false; say("");
  $("who").textContent = "signed in as " + identity.name + " (" + identity.role + (identity.role === "read" ? ": actions disabled" : "") + ") ";
  $("who").append(el("button", { class: "secondary", id: "signout", onclick: async () => { await fetch("/console/signout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": session.csrf || "" } }); showSignIn(""); } }, "Sign out"));
  listen(); route();
}
function listen() {
  if (stream || !window.EventSource) return;
  stream = new EventSource("/api/v1/stream");
  const changed = () => { clearTimeout(refreshTimer); refreshTimer = setTimeout(() => render(true), 300); };
  for (const name of ["event", "delivery", "endpoint"]) stream.addEventListener(name, changed);
}
function route() {
  const page = (location.hash || "#overview").slice(1).split("/")[0] || "overview";
  current = ["overview", "payment", "dead", "endpoints"].includes(page) ? page : "overview";
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("current", link.dataset.page === current);
  say("");
  render(false);
}
// A page drawn from an answer that arrives after the user moved on is dropped.
let drawn = 0;
function stillCurrent(page, ticket) { return current === page && ticket === drawn; }
async function render(live) {
  if (!session) return;
  const ticket = ++drawn;
  try {
    if (current === "overview") await overview(ticket);
    else if (current === "payment") await paymentPage(live, ticket);
    else if (current === "dead") await deadLetters(live, ticket);
    else if (current === "endpoints") await endpoints(ticket);
  } catch (e) { if (e.message !== "signed out") say(e.message, "error"); }
}

async function overview(ticket) {
  const status = await api("/api/v1/status");
  if (!stillCurrent("overview", ticket)) return;
  const sections = [];
  sections.push(el("section", { id: "overview-summary" }, el("h2", { text: "paybridge" }),
    el("p", {}, "Polling: ", status.polling ? word("yes", "ok") : word("no (another instance polls, or it is waiting for the lease)", "warn"),
      " · Ready: ", status.ready ? word("ready", "ok") : word("not ready", "bad"),
      " · Queue: " + status.queue.pending + " pending, " + status.queue.dead + " dead"),
    status.reasons.length ? el("ul", {}, status.reasons.map(r => el("li", { class: "bad", text: r }))) : null));
  sections.push(el("section", { id: "overview-watches" }, el("h2", { text: "Watches" }), table(["watch", "every", "last poll", "outcome", "last success", "error"],
    status.watches.map(w => {
      const failed = w.lastFailureAt && (!w.lastSuccessAt || w.lastFailureAt > w.lastSuccessAt);
      return el("tr", {}, el("td", { text: w.name }), el("td", { text: w.every }), el("td", { text: when(failed ? w.lastFailureAt : w.lastSuccessAt) }),
        el("td", {}, w.lastSuccessAt || w.lastFailureAt ? (failed ? word("failed", "bad") : word("ok", "ok")) : word("waiting", "warn")),
        el("td", { text: when(w.lastSuccessAt) }), el("td", { class: "mono", text: failed ? (w.lastError || "") : "" }));
    }))));
  sections.push(el("section", { id: "overview-endpoints" }, el("h2", { text: "Endpoints" }), endpointTable(status.endpoints, false)));
  const n = status.notifications;
  sections.push(el("section", { id: "overview-notifications" }, el("h2", { text: "The bank's notifications" }),
    n ? el("p", {}, "Subscription for ", el("span", { class: "mono", text: n.publicURL }), ": ", word(n.status, n.active ? "ok" : "bad"),
      n.statusMessage ? " (" + n.statusMessage + ")" : "", " · look-ups waiting: " + n.pendingLookups)
      : el("p", { class: "muted", text: "Not configured (source.notifications): changes come by polling only." })));
  $("page").replaceChildren(...sections);
}
function endpointTable(list, actions) {
  const headers = ["endpoint", "health", "queue", "oldest pending", "dead letters", "last success", "last failure", "circuit"];
  if (actions) headers.push("action");
  return table(headers, list.map(e => el("tr", { "data-endpoint": e.name },
    el("td", { text: e.name }), el("td", {}, healthWord(e.health), e.disabledReason ? el("div", { class: "muted", text: e.disabledReason }) : null),
    el("td", { text: String(e.pending) }), el("td", { text: when(e.oldestPendingAt) }), el("td", { text: String(e.dead) }),
    el("td", { text: when(e.lastSuccessAt) }), el("td", { text: when(e.lastFailureAt) }), el("td", { text: e.circuit }),
    actions ? el("td", {}, e.health === "disabled"
      ? el("button", { class: "enable", disabled: !canAct(), title: canAct() ? null : "a read token cannot act", onclick: () => toggle(e.name, true) }, "Enable")
      : el("button", { class: "disable secondary", disabled: !canAct(), title: canAct() ? null : "a read token cannot act", onclick: () => toggle(e.name, false) }, "Disable")) : null)));
}
async function endpoints(ticket) {
  const status = await api("/api/v1/status");
  if (ticket !== undefined && !stillCurrent("endpoints", ticket)) return;
  $("page").replaceChildren(el("section", { id: "endpoints" }, el("h2", { text: "Endpoints" }), endpointTable(status.endpoints, true),
    canAct() ? null : el("p", { class: "muted", text: "Signed in with a read token: actions are disabled." })));
}
async function toggle(name, enable) {
  if (!confirm((enable ? "Enable" : "Disable") + " endpoint " + name + "?" + (enable ? "" : " Its deliveries will wait until it is enabled."))) return;
  try { await post("/api/v1/endpoints/" + encodeURIComponent(name) + "/" + (enable ? "enable" : "disable"), {}); say("Endpoint " + name + (enable ? " enabled." : " disabled.")); await endpoints(); }
  catch (e) { say(e.message, "error"); }
}

let shownPayment = null;
async function paymentPage(live, ticket) {
  // A live update redraws a timeline on show, never the search box or a list of matches.
  if (live) { if (shownPayment) await showTimeline(shownPayment, ticket); return; }
  const form = el("form", { class: "inline", id: "payment-form", onsubmit: async (event) => { event.preventDefault(); await findPayment($("payment-query").value); } },
    el("label", { for: "payment-query", text: "Payment id or reference" }), el("input", { id: "payment-query", type: "text", required: true }), el("button", { type: "submit", id: "payment-find" }, "Find"));
  $("page").replaceChildren(el("section", {}, el("h2", { text: "Find a payment" }), form), el("div", { id: "payment-result" }));
  if (shownPayment) await showTimeline(shownPayment);
}
async function findPayment(query) {
  try {
    const found = await api("/api/v1/payments?q=" + encodeURIComponent(query.trim()));
    shownPayment = null;
    if (found.payments.length === 0) { $("payment-result").replaceChildren(el("section", {}, el("p", { text: "paybridge has not seen a payment with id or reference " + query + "." }))); return; }
    if (found.payments.length > 1) {
      $("payment-result").replaceChildren(el("section", {}, el("h2", { text: found.payments.length + " payments carry " + query }),
        table(["payment", "status", "updated"], found.payments.map(p => el("tr", {}, el("td", {}, el("a", { href: "#payment", onclick: () => showTimeline(p.paymentId), text: p.paymentId })), el("td", { text: p.status }), el("td", { text: when(p.updatedAt) }))))));
      return;
    }
    await showTimeline(found.payments[0].paymentId);
  } catch (e) { say(e.message, "error"); }
}
async function showTimeline(id, ticket) {
  shownPayment = id;
  const t = await api("/api/v1/payments/" + encodeURIComponent(id));
  if (ticket !== undefined && !stillCurrent("payment", ticket)) return;
  const p = t.payment;
  const rows = [];
  for (const event of t.events) {
    rows.push(el("tr", { class: "event" }, el("td", { text: when(event.createdAt) }),
      el("td", {}, el("b", { text: event.status ? (event.previousStatus ? event.status + " ← " + event.previousStatus : event.status + " (new)") : event.type })),
      el("td", { text: "watch " + (event.watch || "–") }), el("td", { class: "mono", text: event.type + " " + event.id })));
    for (const d of event.deliveries) {
      const log = Array.isArray(d.attempts) ? d.attempts : [];
      rows.push(el("tr", { class: "delivery", "data-delivery": String(d.id) }, el("td", {}), el("td", {}, "→ " + d.endpoint + ": ", stateWord(d.state)),
        el("td", { text: log.length + " attempt" + (log.length === 1 ? "" : "s") + " (delivery " + d.id + ")" }), el("td", {})));
      for (const a of log) {
        rows.push(el("tr", { class: "attempt" }, el("td", {}), el("td", { class: "muted", text: "   attempt " + a.number + " · " + when(a.startedAt) }),
          el("td", {}, a.httpStatus ? word("HTTP " + a.httpStatus, a.httpStatus >= 200 && a.httpStatus < 300 ? "ok" : "bad") : word(a.error || "no answer", "bad"), " in " + a.durationMs + " ms"),
          el("td", { class: "mono", text: a.response || a.error || "" })));
      }
    }
  }
  $("payment-result").replaceChildren(el("section", { id: "timeline" }, el("h2", {}, "Payment ", el("span", { class: "mono", text: p.paymentId })),
    el("p", {}, "Now ", el("b", { text: p.status }), " · " + p.changes + " change" + (p.changes === 1 ? "" : "s") + " seen · first seen " + when(p.firstSeenAt) + " as " + (p.firstStatus || "?") + " by watch " + (p.firstWatch || "?")),
    table(["when", "status", "how", "event / answer"], rows)));
}

let selected = new Set(), plan = null;
async function deadLetters(live, ticket) {
  const page = await api("/api/v1/deliveries?state=dead&limit=200");
  const all = await api("/api/v1/deliveries?limit=200");
  if (ticket !== undefined && !stillCurrent("dead", ticket)) return;
  const replaying = plan && !plan.dryRun ? new Set(plan.replayed) : new Set();
  const rows = page.deliveries.map(d => el("tr", { "data-delivery": String(d.id) },
    el("td", {}, el("input", { type: "checkbox", class: "pick", "aria-label": "select delivery " + d.id, checked: selected.has(d.id), onchange: (e) => { e.target.checked ? selected.add(d.id) : selected.delete(d.id); plan = null; showPlan(); updateButtons(); } })),
    el("td", { text: String(d.id) }), el("td", { text: d.endpoint }), el("td", { class: "mono", text: d.subject }), el("td", { text: d.eventType }),
    el("td", { text: d.attempts + (d.lastStatus ? " (last HTTP " + d.lastStatus + ")" : d.lastError ? " (" + d.lastError + ")" : "") }), el("td", { text: when(d.updatedAt) })));
  const recent = all.deliveries.filter(d => replaying.has(d.id)).map(d => el("tr", { "data-replayed": String(d.id) }, el("td", { text: String(d.id) }), el("td", { text: d.endpoint }), el("td", {}, stateWord(d.state)), el("td", { text: String(d.attempts) })));
  $("page").replaceChildren(
    el("section", { id: "dead-letters" }, el("h2", { text: "Dead letters (" + page.deliveries.length + ")" }),
      page.deliveries.length ? table(["", "delivery", "endpoint", "payment", "event", "attempts", "dead since"], rows) : el("p", { class: "muted", text: "No dead letters." }),
      el("p", { class: "inline" }, el("button", { id: "dry-run", class: "secondary", disabled: !canAct() || selected.size === 0, onclick: dryRun }, "Dry run"), " ",
        el("button", { id: "replay", disabled: !canAct() || !plan || !plan.dryRun || plan.ids.length === 0, onclick: replay }, "Replay"),
        canAct() ? null : el("span", { class: "muted", text: " Signed in with a read token: actions are disabled." })),
      el("div", { id: "plan" })),
    recent.length ? el("section", { id: "replayed" }, el("h2", { text: "Replayed" }), table(["delivery", "endpoint", "state", "attempts"], recent)) : "");
  showPlan();
}
function updateButtons() {
  if ($("dry-run")) $("dry-run").disabled = !canAct() || selected.size === 0;
  if ($("replay")) $("replay").disabled = !canAct() || !plan || !plan.dryRun || plan.ids.length === 0;
}
function showPlan() {
  const box = $("plan"); if (!box) return;
  if (!plan) { box.replaceChildren(); return; }
  box.replaceChildren(el("div", { class: "notice", id: "plan-text" }, !plan.dryRun
    ? "Replayed " + plan.replayed.length + " deliver" + (plan.replayed.length === 1 ? "y" : "ies") + " with their webhook-ids; their states follow below."
    : "Dry run: " + plan.ids.length + " deliver" + (plan.ids.length === 1 ? "y" : "ies") + " would be queued again (" + plan.ids.join(", ") + ")" + (plan.outOfOrder.length ? "; out of order for their receiver: " + plan.outOfOrder.join(", ") : "") + ". Press Replay to do it."));
}
async function dryRun() {
  try { plan = await post("/api/v1/deliveries/replay", { ids: [...selected], confirm: false }); showPlan(); updateButtons(); }
  catch (e) { say(e.message, "error"); }
}
async function replay() {
  try { plan = await post("/api/v1/deliveries/replay", { ids: plan.ids, confirm: true }); selected.clear(); await deadLetters(true); }
  catch (e) { say(e.message, "error"); }
}

window.addEventListener("hashchange", route);
$("signin-form").addEventListener("submit", signIn);
(async () => {
  const response = await fetch("/console/session", { credentials: "same-origin" });
  if (response.ok) start(await response.json()); else showSignIn("");
})();
</script>
</body>
</html>
"""#
}
