// wimms dashboard: plain JavaScript, no build step, no outside resources.
// Everything shown comes from the member that served this page, through
// the public API (with the token typed in the header when tokens are set).
'use strict';

const params = new URLSearchParams(location.search);
const REFRESH_MS = Math.max(500, Number(params.get('refresh')) || 2000);
const RATE_WINDOW_MS = 10 * 60 * 1000; // the chart shows the last 10 minutes
const TOKEN_KEY = 'wimms-api-token';

let token = sessionStorage.getItem(TOKEN_KEY) || '';
const samples = []; // {t, logins: {outcome: total}, allocations: {result: total}}

const $ = (id) => document.getElementById(id);

// el builds an element; text goes through textContent, never innerHTML, so
// names and URLs from the API cannot inject markup.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === 'class') e.className = v;
    else if (k === 'style') e.style.cssText = v;
    else e.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

class APIError extends Error {
  constructor(path, status, body) {
    const detail = body && body.status ? body.status : 'HTTP ' + status;
    super(path + ': ' + detail);
    this.status = status;
    this.apiStatus = body && body.status;
  }
}

// api GETs a path; level, when given, is sent as ?consistency=.
async function api(path, level) {
  const headers = {};
  if (token) headers['Authorization'] = 'Bearer ' + token;
  let url = path;
  if (level) url += (path.includes('?') ? '&' : '?') + 'consistency=' + level;
  const resp = await fetch(url, { headers, cache: 'no-store' });
  let body = null;
  try { body = await resp.json(); } catch (e) { /* not JSON */ }
  if (!resp.ok) throw new APIError(path, resp.status, body);
  return { body, member: resp.headers.get('X-Wimms-Member') };
}

function banner(text) {
  const b = $('banner');
  b.hidden = !text;
  b.textContent = text || '';
  document.body.classList.toggle('stale', Boolean(text));
}

function ago(ms) {
  if (ms < 0) return 'unknown';
  if (ms < 1000) return ms + ' ms ago';
  if (ms < 120000) return (ms / 1000).toFixed(1) + ' s ago';
  return Math.round(ms / 60000) + ' min ago';
}

const ALIVE = new Set(['leader', 'follower', 'candidate']);

function renderCluster(cluster, progress, self) {
  const leader = cluster.leader ? cluster.leader.id : null;
  $('leader').textContent = leader || 'none';
  $('leader').dataset.leader = leader || '';
  $('term').textContent = cluster.term;
  $('commit').textContent = progress ? progress.commit_index : cluster.commit_index;
  renderQuorum(cluster.members);
  const byId = {};
  for (const p of (progress && progress.members) || []) byId[p.id] = p;
  const zones = {};
  for (const m of cluster.members) (zones[m.zone || '(no zone)'] ||= []).push(m);
  const root = $('zones');
  root.replaceChildren();
  for (const zone of Object.keys(zones).sort()) {
    const rows = zones[zone].sort((a, b) => a.id.localeCompare(b.id)).map((m) => {
      const role = m.id === leader ? 'leader' : m.state;
      const p = byId[m.id] || {};
      // Gossip says alive or not; a member that gossip still calls alive
      // but that did not answer this member's probe is unreachable.
      let health = ALIVE.has(m.state) ? 'alive' : 'down';
      if (health === 'alive' && p.error) health = 'unreachable';
      const applied = p.applied_index ?? null;
      const lag = p.lag ?? null;
      return el('tr', {
        class: 'member', 'data-member-id': m.id, 'data-zone': zone, 'data-role': role,
        'data-health': health, 'data-applied': applied ?? '', 'data-lag': lag ?? '',
        title: p.error || '',
      },
      el('td', {}, m.id, m.id === self ? el('span', { class: 'self' }, ' (this member)') : null),
      el('td', { class: 'role' }, role),
      el('td', { class: 'health health-' + health }, health),
      el('td', { class: 'num' }, ago(m.last_contact_ms)),
      el('td', { class: 'num applied' }, applied ?? '?'),
      el('td', { class: 'num lag' }, lag ?? '?'));
    });
    root.append(el('div', { class: 'zone', 'data-zone': zone },
      el('h3', {}, zone),
      el('table', {},
        el('thead', {}, el('tr', {}, ...['member', 'role', 'health', 'last contact', 'applied', 'lag'].map((h) => el('th', {}, h)))),
        el('tbody', {}, ...rows))));
  }
}

// renderQuorum says how many more voters the cluster can lose and still
// elect a leader and commit: a majority of the voters must be alive.
function renderQuorum(members) {
  const voters = members.filter((m) => m.voter);
  const alive = voters.filter((m) => ALIVE.has(m.state)).length;
  const quorum = Math.floor(voters.length / 2) + 1;
  const canLose = alive - quorum;
  const q = $('quorum');
  q.dataset.canLose = String(Math.max(-1, canLose));
  if (canLose < 0) {
    q.textContent = 'No quorum: ' + alive + ' of ' + voters.length + ' voters alive, ' + quorum +
      ' needed. Writes and default reads fail until enough members are back.';
  } else {
    q.textContent = alive + ' of ' + voters.length + ' voters alive (a quorum is ' + quorum +
      '): the cluster can lose ' + canLose + ' more member' + (canLose === 1 ? '' : 's') + ' and keep working.';
  }
}

function renderNode(n) {
  const share = n.capacity > 0 ? n.current_load / n.capacity : (n.current_load > 0 ? 1 : 0);
  const takesUsers = !n.downed && !n.backoff && n.available > 0;
  return el('div', {
    class: 'node', 'data-node': n.node, 'data-id': n.id, 'data-load': n.current_load,
    'data-capacity': n.capacity, 'data-available': n.available, 'data-downed': n.downed,
    'data-backoff': n.backoff, 'data-full': share >= 0.9,
  },
  el('div', { class: 'url', title: n.node }, '#', n.id, ' ', n.node),
  el('div', { class: 'bar', title: n.current_load + ' of ' + n.capacity },
    el('div', { class: 'fill', style: 'width:' + Math.min(100, share * 100).toFixed(1) + '%' })),
  el('div', { class: 'figures' },
    el('span', { class: 'load' }, n.current_load, ' / ', n.capacity, ' (', Math.round(share * 100), ' %)'),
    el('span', { class: 'badge ' + (takesUsers ? 'available' : 'unavailable') }, 'available ', n.available),
    n.downed ? el('span', { class: 'badge downed' }, 'DOWNED') : null,
    n.backoff ? el('span', { class: 'badge backoff' }, 'BACKOFF') : null));
}

async function loadServices(level) {
  const { body } = await api('/v1/services', level);
  return Promise.all(body.services.map(async (s) => {
    const name = encodeURIComponent(s.service);
    const [nodes, stats] = await Promise.all([
      api('/v1/services/' + name + '/nodes', level),
      api('/v1/services/' + name + '/stats', level),
    ]);
    return { service: s, nodes: nodes.body.nodes, stats: stats.body };
  }));
}

function renderServices(services) {
  const root = $('service-list');
  root.replaceChildren();
  if (services.length === 0) root.append(el('p', {}, 'No services yet.'));
  for (const { service, nodes, stats } of services) {
    root.append(el('div', { class: 'service', 'data-service': service.service,
      'data-users': stats.users, 'data-records': stats.records },
    el('h3', {}, service.service),
    el('p', { class: 'counts' },
      el('span', { class: 'users' }, stats.users), ' users · ',
      el('span', { class: 'records' }, stats.records), ' records · ',
      nodes.length, ' nodes · new users ', service.allow_new_users ? 'allowed' : 'refused'),
    ...nodes.map(renderNode)));
  }
}

const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);

// rate between two samples; a member restart resets counters (negative
// difference), which counts as zero rather than a dip below it.
function rate(a, b, key) {
  const dt = (b.t - a.t) / 1000;
  if (dt <= 0) return 0;
  const d = (key ? (b[key] || 0) - (a[key] || 0) : 0);
  return Math.max(0, d) / dt;
}

async function sampleRates() {
  // The whole cluster's counters, gathered by the member that serves this
  // page: logins summed over the members that decided them, allocations
  // as the log applies them (every member has all of them).
  const { body } = await api('/v1/cluster/activity');
  const missing = body.members.filter((m) => m.error).map((m) => m.id);
  const s = {
    t: Date.now(),
    logins: body.logins || {},
    allocations: body.allocations || {},
    missing,
  };
  s.loginTotal = sum(s.logins);
  s.allocationTotal = sum(s.allocations);
  samples.push(s);
  while (samples.length > 2 && s.t - samples[0].t > RATE_WINDOW_MS) samples.shift();
  renderRates();
  if (missing.length) throw new Error('no counters from ' + missing.join(', ') + ': their logins are left out');
}

function renderRates() {
  const svg = $('rates');
  if (samples.length < 2) return;
  const points = [];
  for (let i = 1; i < samples.length; i++) {
    points.push({ t: samples[i].t, logins: rate(samples[i - 1], samples[i], 'loginTotal'),
      allocations: rate(samples[i - 1], samples[i], 'allocationTotal') });
  }
  const t0 = samples[0].t; const span = Math.max(1, samples[samples.length - 1].t - t0);
  const top = Math.max(1, ...points.map((p) => Math.max(p.logins, p.allocations)));
  // A step line: each interval's rate is flat from its start to its end.
  const x = (t) => ((t - t0) / span * 600).toFixed(1);
  const y = (v) => (115 - v / top * 110).toFixed(1);
  const line = (key) => points.map((p, i) => {
    const start = i === 0 ? t0 : points[i - 1].t;
    return x(start) + ',' + y(p[key]) + ' ' + x(p.t) + ',' + y(p[key]);
  }).join(' ');
  $('rates-logins').setAttribute('points', line('logins'));
  $('rates-allocations').setAttribute('points', line('allocations'));
  $('rates-peak').textContent = top.toFixed(2) + '/s';
  // The text and the attributes tell the rate over the whole window shown,
  // so one burst stays visible for the window instead of one interval.
  const first = samples[0]; const last = samples[samples.length - 1];
  const loginRate = rate(first, last, 'loginTotal');
  const allocRate = rate(first, last, 'allocationTotal');
  svg.dataset.loginRate = loginRate.toFixed(3);
  svg.dataset.allocationRate = allocRate.toFixed(3);
  $('rates-window').textContent = Math.round(span / 1000);
  const clock = (t) => new Date(t).toLocaleTimeString();
  $('axis-start').textContent = clock(t0);
  $('axis-mid').textContent = clock(t0 + span / 2);
  $('axis-end').textContent = clock(t0 + span);
  $('rates-text').textContent = allocRate.toFixed(2) + ' allocations/s and ' + loginRate.toFixed(2) +
    ' logins/s on average over the last ' + Math.round(span / 1000) + ' s (peak ' + top.toFixed(2) + '/s).';
  const rows = [];
  for (const [counter, key] of [['logins', 'logins'], ['allocations', 'allocations']]) {
    for (const outcome of Object.keys(last[key]).sort()) {
      const r = Math.max(0, (last[key][outcome] - (first[key][outcome] || 0))) / (span / 1000);
      rows.push(el('tr', { 'data-counter': counter, 'data-outcome': outcome },
        el('td', {}, counter), el('td', {}, outcome), el('td', { class: 'num' }, r.toFixed(2)),
        el('td', { class: 'num' }, last[key][outcome])));
    }
  }
  $('outcomes').tBodies[0].replaceChildren(...rows);
}

async function refresh() {
  const problems = [];
  let cluster;
  let self = '?';
  try {
    const c = await api('/v1/cluster');
    cluster = c.body;
    self = c.member || '?';
  } catch (e) {
    const why = e.status === 401 ? 'the API needs a token: enter it above' : e.message;
    banner('Cannot read the cluster from this member: ' + why + '. Showing the last data received.');
    return;
  }
  $('member').textContent = self;
  // With a leader, reads are served at the default level (the leader's
  // committed state, forwarded when this member follows). Without one the
  // member can still answer from what it has applied: stale, and said so.
  let level = cluster.leader ? 'default' : 'stale';
  if (!cluster.leader) problems.push('Member ' + self + ' knows no leader: writes fail and the data below is its last applied state (stale).');
  let progress = null;
  try { progress = (await api('/v1/cluster/progress')).body; } catch (e) { problems.push('Member progress unavailable: ' + e.message); }
  renderCluster(cluster, progress, self);
  let services;
  try {
    services = await loadServices(level);
  } catch (e) {
    if (level === 'stale') throw e;
    problems.push('Default read failed (' + e.message + '): showing stale data.');
    level = 'stale';
    services = await loadServices(level);
  }
  renderServices(services);
  $('consistency').textContent = level === 'default'
    ? 'consistency=default (the leader\'s committed state)'
    : 'consistency=stale (this member\'s applied state, may lag)';
  $('consistency').dataset.level = level;
  try { await sampleRates(); } catch (e) { problems.push('Rates unavailable: ' + e.message); }
  $('refreshed').textContent = new Date().toLocaleTimeString();
  banner(problems.join(' '));
}

async function loop() {
  try { await refresh(); } catch (e) { banner('Refresh failed: ' + e.message); }
  setTimeout(loop, REFRESH_MS);
}

$('interval').textContent = (REFRESH_MS / 1000) + ' s';
$('token').value = token;
$('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  token = $('token').value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  refresh().catch((e) => banner('Refresh failed: ' + e.message));
});
loop();
