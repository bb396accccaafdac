// pgwarden's responder page. Plain JS, no build step. Every value from the store is put in the
// page as text, never as HTML, with its hidden characters shown (see shown()): the SQL shown here
// is written by agents (or attackers).
'use strict';

const $ = (sel) => document.querySelector(sel);
const state = { token: sessionStorage.getItem('pgwarden-token') || '', cursor: null, filters: {} };

// Characters the page would act on instead of showing: C0 and C1 controls but newline and tab,
// DEL, the bidi controls (they reorder what is shown: an agent's `/*U+202E ... */` made the page
// show `... */ WHERE id = 3` for an UPDATE of every row, red team round 33) and the line and
// paragraph separators. The same set as the CLI's (src/cli/printable.ts).
// eslint-disable-next-line no-control-regex
const HIDDEN =
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

function escapeOf(c) {
  const n = c.charCodeAt(0);
  return n <= 0xff ? '\\x' + n.toString(16).padStart(2, '0') : '\\u' + n.toString(16).padStart(4, '0');
}

/** Agent-written text for an attribute (a tooltip): hidden characters as visible escapes. */
function plain(value) {
  return value == null ? '' : String(value).replace(HIDDEN, escapeOf);
}

// A run of one hidden character, so 130,000 of them are one highlighted escape.
const HIDDEN_RUNS = new RegExp('(' + HIDDEN.source + ')\\1*', 'g');
// Highlighted escapes per value; the rest are escapes as plain text. One span per character froze
// the page for every responder on an agent's statement of 130,000 control characters (red team,
// round 43).
const MAX_MARKED = 200;
// Characters of agent-written text in the table and the timeline; the decision view shows it whole.
const PREVIEW = 400;

/** Agent-written text for the page: hidden characters as visible, highlighted escapes. */
function shown(value) {
  const text = value == null ? '' : String(value);
  const out = document.createDocumentFragment();
  let from = 0;
  let marked = 0;
  for (const m of text.matchAll(HIDDEN_RUNS)) {
    if (marked === MAX_MARKED) break;
    out.append(text.slice(from, m.index));
    const esc = document.createElement('span');
    esc.className = 'hidden-char';
    esc.title = 'a control character in the original text';
    esc.textContent = escapeOf(m[0]) + (m[0].length > 1 ? ' \u00d7' + m[0].length : '');
    out.append(esc);
    marked++;
    from = m.index + m[0].length;
  }
  out.append(plain(text.slice(from)));
  return out;
}

/** The head of agent-written text, with its length when cut. */
function preview(value) {
  const text = value == null ? '' : String(value);
  return text.length <= PREVIEW ? text : text.slice(0, PREVIEW) + '\u2026 (' + text.length + ' characters)';
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : shown(c));
  return e;
}

function setStatus(text, isError) {
  const s = $('#status');
  s.textContent = text;
  s.className = isError ? 'error' : '';
}

async function api(path) {
  const res = await fetch(path, { headers: { authorization: 'Bearer ' + state.token } });
  if (res.status === 401 || res.status === 403) {
    setStatus('token refused (' + res.status + ')', true);
    throw new Error('auth');
  }
  if (!res.ok) {
    setStatus('error ' + res.status, true);
    throw new Error('http ' + res.status);
  }
  setStatus('connected');
  return res.json();
}

function query(extra) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...state.filters, ...extra })) if (v) p.set(k, v);
  return p.toString();
}

function readFilters() {
  const f = {};
  for (const input of $('#filters').querySelectorAll('input, select')) {
    let v = input.value.trim();
    if (v && input.type === 'datetime-local') v = new Date(v).toISOString();
    if (v) f[input.name] = v;
  }
  return f;
}

function verdictBadge(v) {
  return el('span', { class: 'verdict ' + (v || '') }, v || '–');
}

function row(d) {
  const tr = el(
    'tr',
    { 'data-id': d.id },
    el('td', {}, new Date(d.time).toLocaleString()),
    el('td', { class: 'human' }, d.human),
    el('td', {}, d.agent),
    el('td', {}, d.tenant),
    el('td', {}, verdictBadge(d.verdict)),
    el('td', {}, (d.ruleIds || []).join(', ')),
    el('td', { class: 'sql', title: plain(preview(d.sql)) }, preview(d.sql) || d.kind),
    el('td', {}, d.outcome && d.outcome.rows != null ? d.outcome.rows : ''),
    el(
      'td',
      {},
      el(
        'a',
        { href: '#/session/' + encodeURIComponent(d.sessionId), class: 'session-link' },
        d.sessionId.slice(0, 8),
      ),
    ),
  );
  tr.addEventListener('click', (ev) => {
    if (ev.target.closest('a')) return;
    location.hash = '#/decision/' + encodeURIComponent(d.id);
  });
  return tr;
}

async function search(append) {
  const body = $('#results tbody');
  const page = await api(
    '/api/v1/decisions?' + query(append && state.cursor ? { cursor: state.cursor } : {}),
  );
  if (!append) body.replaceChildren();
  for (const d of page.items) body.append(row(d));
  state.cursor = page.nextCursor;
  $('#more').hidden = !page.nextCursor;
  $('#summary').textContent =
    body.children.length + ' decisions shown' + (page.nextCursor ? ' (more available)' : '');
}

function show(view) {
  for (const id of ['search-view', 'session-view', 'decision-view']) $('#' + id).hidden = id !== view;
}

// Records a timeline shows; a longer session is read with `pgwarden log --replay` or the API.
const MAX_TIMELINE = 1000;

async function showSession(id) {
  const items = [];
  let after = null;
  do {
    const s = await api(
      '/api/v1/sessions/' + encodeURIComponent(id) + (after === null ? '' : '?after=' + after),
    );
    items.push(...s.items);
    after = s.next;
  } while (after !== null && items.length < MAX_TIMELINE);
  $('#session-id').replaceChildren(shown(id));
  const first = items[0] || {};
  $('#session-who').replaceChildren(
    shown(
      `${first.human || '?'} through ${first.agent || '?'} in tenant ${first.tenant || '?'}, ` +
        (after === null
          ? `${items.length} records`
          : `the first ${items.length} records (pgwarden log --replay shows them all)`),
    ),
  );
  const list = $('#timeline');
  list.replaceChildren();
  for (const d of items) {
    const o = d.outcome;
    const outcome = o
      ? o.sqlstate
        ? `error ${o.sqlstate}: ${o.errorMessage || ''}`
        : `${o.command || ''} · ${o.upstreamMicros} µs upstream`
      : '';
    const li = el(
      'li',
      { class: d.verdict || 'other', 'data-id': d.id },
      el('strong', {}, '#' + d.seq + ' '),
      verdictBadge(d.verdict),
      ' ',
      new Date(d.time).toLocaleTimeString(),
      ' · ',
      d.kind,
      d.judgeMicros != null ? ` · judged in ${d.judgeMicros} µs` : '',
      outcome ? ' · ' + outcome : '',
      el('code', {}, preview(d.rewrittenSql || d.sql || '')),
    );
    li.addEventListener('click', () => (location.hash = '#/decision/' + encodeURIComponent(d.id)));
    list.append(li);
  }
  show('session-view');
}

async function showDecision(id) {
  const d = await api('/api/v1/decisions/' + encodeURIComponent(id));
  $('#decision-id').replaceChildren(shown(d.id));
  $('#decision-session-link').href = '#/session/' + encodeURIComponent(d.sessionId);
  const facts = [
    ['Time', d.time],
    ['Human', d.human],
    ['Agent', d.agent],
    ['Tenant', d.tenant],
    ['Roles', (d.roles || []).join(', ')],
    ['Verdict', d.verdict],
    ['Deciding rules', (d.ruleIds || []).join(', ')],
    ['Reasons', (d.reasons || []).join(', ')],
    ['Flags', (d.flags || []).join(', ')],
    ['Tables', (d.tables || []).join(', ')],
    ['Error sent to the agent', d.error ? `${d.error.sqlstate} ${d.error.message}` : ''],
    ['Rows', d.outcome ? d.outcome.rows : ''],
    ['Upstream result', d.outcome ? d.outcome.sqlstate || d.outcome.command : ''],
    ['Session / seq', `${d.sessionId} / ${d.seq}`],
    ['Chain', `${d.chain.instance} #${d.chain.seq} ${d.chain.hash.slice(0, 16)}…`],
  ];
  const dl = $('#decision-facts');
  dl.replaceChildren();
  for (const [k, v] of facts) dl.append(el('dt', {}, k), el('dd', { 'data-fact': k }, v == null ? '' : v));
  $('#sql-original').replaceChildren(shown(d.sql));
  $('#sql-rewritten').replaceChildren(
    shown(d.verdict === 'deny' ? '(not forwarded: denied)' : d.rewrittenSql || d.sql),
  );
  show('decision-view');
}

async function route() {
  if (!state.token) return;
  const h = location.hash;
  try {
    if (h.startsWith('#/session/')) await showSession(decodeURIComponent(h.slice(10)));
    else if (h.startsWith('#/decision/')) await showDecision(decodeURIComponent(h.slice(11)));
    else {
      show('search-view');
      await search(false);
    }
  } catch (err) {
    if (err.message !== 'auth') console.error(err);
  }
}

function exportAs(format) {
  // The token goes in a header, so the download is fetched and handed over as a blob.
  fetch('/api/v1/export?' + query({ format }), { headers: { authorization: 'Bearer ' + state.token } })
    .then((r) => r.blob())
    .then((b) => {
      const a = el('a', { href: URL.createObjectURL(b), download: 'pgwarden-decisions.' + format });
      a.click();
    });
}

$('#auth').addEventListener('submit', (ev) => {
  ev.preventDefault();
  state.token = $('#token').value.trim();
  sessionStorage.setItem('pgwarden-token', state.token);
  route();
});
$('#filters').addEventListener('submit', (ev) => {
  ev.preventDefault();
  state.filters = readFilters();
  state.cursor = null;
  if (location.hash && location.hash !== '#/') location.hash = '#/';
  else route();
});
$('#more').addEventListener('click', () => search(true));
$('#export-csv').addEventListener('click', () => exportAs('csv'));
$('#export-ndjson').addEventListener('click', () => exportAs('ndjson'));
window.addEventListener('hashchange', route);
if (state.token) $('#token').value = state.token;
route();
