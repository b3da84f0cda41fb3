// watchfloor console. Everything that comes from events is attacker-controlled: it is
// only ever put into the page with textContent (never innerHTML), and the page's CSP
// allows no inline script.
"use strict";

const csrf = document.querySelector('meta[name="csrf"]').content;
const alerts = new Map(); // alert_id -> {view, versions: [{version, received}], acked}
const rank = { low: 0, medium: 1, high: 2, critical: 3 };

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function when(seconds) {
  return new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z";
}

function visible(view) {
  const sev = document.getElementById("filter-severity").value;
  const dom = document.getElementById("filter-domain").value;
  if (sev && view.severity !== sev) return false;
  if (dom && !(view.domains || []).includes(dom)) return false;
  return true;
}

async function feedback(alertId, action, verdict) {
  const body = { alert_id: alertId, action: action };
  if (verdict) body.verdict = verdict;
  const r = await fetch("/api/feedback", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  const answer = await r.json();
  const item = alerts.get(alertId);
  if (r.ok) {
    item.acked = action + (verdict ? " (" + verdict + ")" : "");
  } else {
    item.error = answer.error || "not recorded";
  }
  render();
  stats();
}

function card(alertId, item) {
  const v = item.view;
  const li = el("li", "alert sev-" + (v.severity || "unknown"));
  li.id = "alert-" + alertId;
  li.dataset.alertId = alertId;
  const head = el("div", "head");
  // An injected exercise alert (watchfloor exercise run): never mistaken for a real one.
  if (v.exercise) {
    li.classList.add("exercise");
    head.append(el("span", "exercise", "EXERCISE " + v.exercise));
  }
  head.append(el("span", "severity", v.severity || "?"));
  head.append(el("span", "alert-id", alertId));
  head.append(el("span", "domains", (v.domains || []).join(", ")));
  head.append(el("span", "score", v.score !== undefined ? "score " + v.score : ""));
  li.append(head);
  const ents = el("ul", "entities");
  for (const e of v.entities || []) ents.append(el("li", "entity", (e.type || "?") + " " + (e.id || "")));
  li.append(ents);
  const dets = el("ul", "detections");
  for (const d of v.detections || []) {
    const row = el("li", "detection");
    row.append(el("span", "detector", d.detector || "?"));
    if (d.reason !== undefined) row.append(el("span", "reason", d.reason));
    if (d.ts !== undefined) row.append(el("span", "ts", eventTime(d.ts)));
    dets.append(row);
  }
  li.append(dets);
  const timeline = el("ol", "timeline");
  for (const ver of item.versions) timeline.append(el("li", "version", "v" + ver.version + " at " + when(ver.received)));
  li.append(timeline);
  const actions = el("div", "actions");
  if (item.acked) {
    actions.append(el("span", "acked", "recorded: " + item.acked));
  } else {
    const ack = el("button", "ack", "Acknowledge");
    ack.addEventListener("click", () => feedback(alertId, "ack"));
    const esc = el("button", "escalate", "Escalate (true positive)");
    esc.addEventListener("click", () => feedback(alertId, "escalate", "true_positive"));
    const fp = el("button", "false-positive", "Close: false positive");
    fp.addEventListener("click", () => feedback(alertId, "close", "false_positive"));
    actions.append(ack, esc, fp);
  }
  if (item.error) actions.append(el("span", "error", item.error));
  li.append(actions);
  return li;
}

function render() {
  const list = document.getElementById("alerts");
  const items = [...alerts.entries()].sort((a, b) => b[1].received - a[1].received);
  list.replaceChildren(...items.filter(([, it]) => visible(it.view)).map(([id, it]) => card(id, it)));
}

function addNotice(item) {
  // A deconfliction notice: another agency holds an incident about the same entity.
  const n = item.view;
  const li = el("li", "notice", when(item.received) + " your " + (n.alert_id || "alert"));
  for (const o of n.others || []) {
    if (o && typeof o === "object") {
      li.append(el("span", "other", " · " + (o.agency || "?") + " has " + (o.alert_id || "?")));
    }
  }
  document.getElementById("notices").prepend(li);
}

function eventTime(ts) {
  // Detections carry the event's time as epoch ms or an RFC 3339 string.
  if (typeof ts === "number") return when(ts / 1000);
  return ts;
}

function addAlert(item) {
  const v = item.view;
  const known = alerts.get(v.alert_id);
  const version = { version: v.version, received: item.received };
  if (known) {
    if (!known.versions.some((x) => x.version === v.version)) known.versions.push(version);
    if ((v.version || 0) >= (known.view.version || 0)) known.view = v;
    known.received = item.received;
  } else {
    alerts.set(v.alert_id, { view: v, versions: [version], received: item.received, acked: null });
  }
}

async function stats() {
  const r = await fetch("/api/stats", { credentials: "same-origin" });
  if (!r.ok) return;
  const s = await r.json();
  document.getElementById("stat-alerts").textContent = s.alerts;
  document.getElementById("stat-acked").textContent = s.acknowledged;
  document.getElementById("stat-open").textContent = s.unacknowledged;
  document.getElementById("stat-median").textContent = s.median_response_s === null ? "–" : s.median_response_s + " s";
}

async function start() {
  const r = await fetch("/api/alerts", { credentials: "same-origin" });
  if (r.status === 401) { window.location = "/login"; return; }
  const data = await r.json();
  for (const item of data.alerts.slice().reverse()) addAlert(item);
  for (const [id, versions] of Object.entries(data.versions)) {
    const it = alerts.get(id);
    if (it) it.versions = versions.map((v) => ({ version: v, received: it.received }));
  }
  for (const id of data.acked) { const it = alerts.get(id); if (it) it.acked = "acknowledged"; }
  for (const n of data.notices.slice().reverse()) addNotice(n);
  render();
  stats();
  const source = new EventSource("/api/stream");
  const status = document.getElementById("status");
  source.onopen = () => { status.textContent = "live"; status.className = "status live"; };
  source.onerror = () => { status.textContent = "reconnecting…"; status.className = "status"; };
  source.onmessage = (ev) => {
    const item = JSON.parse(ev.data);
    if (item.kind === "alert") { addAlert(item); render(); stats(); } else { addNotice(item); }
  };
  document.getElementById("filter-severity").addEventListener("change", render);
  document.getElementById("filter-domain").addEventListener("change", render);
  setInterval(stats, 10000);
}

document.addEventListener("DOMContentLoaded", start);
