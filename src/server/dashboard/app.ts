/**
 * The dashboard page's script (docs/dashboard.md), served as `/ui/app.js`. Plain browser
 * JavaScript, no framework, no asset from elsewhere. It calls the `/ui/` routes (routes.ts)
 * with JSON bodies and the session's CSRF token in `X-Etcdsnap-Csrf`; every value from the
 * server is written with `textContent` or as an attribute, never as HTML. The chart is an
 * inline SVG drawn here: stored size (bars) and save duration (line) of the local snapshots
 * whose records carry a duration, oldest to newest.
 */

export const APP_JS = `'use strict';
(function () {
  var csrf = '';
  var pollTimer = 0;
  var SVG = 'http://www.w3.org/2000/svg';
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function svg(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function bytes(n) {
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    var i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(1)) + ' ' + u[i];
  }
  function when(iso) {
    var d = new Date(iso);
    return isNaN(d.getTime()) ? iso : d.toLocaleString();
  }
  function short(iso) {
    var d = new Date(iso);
    return isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  }
  function seconds(ms) { return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s'; }

  async function call(method, path, body) {
    var headers = { 'x-etcdsnap-csrf': csrf || 'login' };
    var init = { method: method, headers: headers, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) { headers['content-type'] = 'application/json'; init.body = JSON.stringify(body); }
    var res = await fetch(path, init);
    var data = {};
    try { data = await res.json(); } catch (e) { data = {}; }
    return { status: res.status, data: data };
  }

  function show(which) {
    $('login').hidden = which !== 'login';
    $('app').hidden = which !== 'app';
    $('logout').hidden = which !== 'app';
    if (which === 'login') { $('node').textContent = ''; $('token').focus(); }
  }
  function fail(msg) { var e = $('error'); e.textContent = msg; e.hidden = !msg; }

  async function load() {
    var r = await call('GET', '/ui/state');
    if (r.status === 401) { csrf = ''; show('login'); return; }
    if (r.status !== 200) { fail(r.data.error || ('error ' + r.status)); return; }
    fail('');
    csrf = r.data.csrf;
    show('app');
    render(r.data);
  }

  function render(s) {
    $('node').textContent = 'node ' + s.node;
    var dl = $('schedule');
    dl.replaceChildren();
    var add = function (k, v) { dl.append(el('dt', null, k), el('dd', null, v)); };
    var sc = s.schedule;
    add('Schedule', sc.enabled ? sc.spec : 'disabled');
    if (sc.enabled) add('Next run', sc.nextRun ? when(sc.nextRun) : 'never');
    add('Retention', sc.retentionPolicy !== undefined ? 'policy ' + sc.retentionPolicy + ' (local and S3)' : String(sc.retention) + ' local' + (sc.s3Retention !== undefined ? ', ' + sc.s3Retention + ' in S3' : ''));
    if (sc.s3) add('S3', sc.s3);
    var lf = $('last-failure');
    if (s.lastFailure) {
      lf.className = 'error';
      lf.textContent = when(s.lastFailure.at) + ': ' + s.lastFailure.what + ': ' + s.lastFailure.message;
    } else { lf.className = 'muted'; lf.textContent = 'none'; }
    var se = $('s3-error');
    se.textContent = s.s3Error || '';
    se.hidden = !s.s3Error;
    renderTable(s.snapshots);
    renderChart(s.snapshots);
    renderSave(s.saving, s.lastSave);
  }

  function renderTable(rows) {
    var tb = document.querySelector('#snapshots tbody');
    tb.replaceChildren();
    $('empty').hidden = rows.length > 0;
    rows.slice().reverse().forEach(function (r) {
      var tr = el('tr', { 'data-name': r.name, 'data-location': r.location, 'data-size': String(r.size), 'data-created': r.createdAt, 'data-status': r.status, 'data-store': r.store });
      var nameCell = el('td', { 'data-label': 'Name' }, r.name);
      if (r.note) nameCell.append(el('div', { class: 'muted note', title: r.newerRecord || r.note }, r.note));
      tr.append(nameCell);
      tr.append(el('td', { 'data-label': 'Node' }, r.node));
      tr.append(el('td', { 'data-label': 'Location', class: 'loc' }, r.location || '-'));
      tr.append(el('td', { 'data-label': 'Size', class: 'num', title: r.size + ' bytes' }, bytes(r.size)));
      tr.append(el('td', { 'data-label': 'Created', title: r.createdAt }, when(r.createdAt)));
      var fmt = el('td', { 'data-label': 'Format' });
      fmt.append(el('span', { class: 'badge' }, r.compression === 'none' ? 'plain' : r.compression));
      if (r.encrypted) fmt.append(el('span', { class: 'badge' }, 'encrypted'));
      tr.append(fmt);
      var st = el('td', { 'data-label': 'Status', class: 'status-' + r.status }, r.status);
      if (r.status === 'failed' && r.message) st.append(el('div', { class: 'error message' }, r.message));
      tr.append(st);
      tr.append(drillCell(r.drill));
      var act = el('td', { class: 'actions' });
      if (r.status === 'successful' && r.store && !r.newerRecord) {
        var a = el('a', { href: '/ui/download?name=' + encodeURIComponent(r.name) + '&store=' + r.store, download: r.name, class: 'download' }, 'Download');
        act.append(a);
      }
      if (r.status === 'successful') {
        var del = el('button', { type: 'button', class: 'link danger delete' }, 'Delete');
        del.addEventListener('click', function () { confirmDelete(r.name); });
        act.append(del);
      }
      tr.append(act);
      tb.append(tr);
    });
  }

  // the last restore drill: passed (revision, keys in its title) or FAILED with its reason; '-' when never drilled
  function drillCell(d) {
    if (!d) return el('td', { 'data-label': 'Drill', class: 'muted drill-none' }, '-');
    var passed = d.status === 'passed';
    var td = el('td', { 'data-label': 'Drill', class: 'drill-' + d.status, 'data-drill': d.status, title: d.at + (passed && d.keys !== undefined && d.revision !== undefined ? ': revision ' + d.revision + ', ' + d.keys + ' keys' : '') },
      (passed ? 'passed ' : 'FAILED ') + when(d.at));
    if (!passed && d.message) td.append(el('div', { class: 'error message' }, d.message));
    return td;
  }

  function renderChart(rows) {
    var pts = rows.filter(function (r) { return r.store === 'local' && r.status === 'successful' && typeof r.durationMs === 'number'; }).slice(-40);
    var box = $('chart');
    box.replaceChildren();
    if (pts.length === 0) { box.append(el('p', { class: 'muted' }, 'No saves with a recorded duration yet.')); return; }
    var W = Math.max(320, Math.min(640, box.clientWidth || 640)), H = 220, L = 56, R = 56, T = 14, B = 34; // text keeps its size on a phone
    var maxSize = Math.max.apply(null, pts.map(function (p) { return p.size; })) || 1;
    var maxDur = Math.max.apply(null, pts.map(function (p) { return p.durationMs; })) || 1;
    var step = (W - L - R) / pts.length;
    var root = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img' });
    root.append(svg('title', {}, 'Stored size (bars) and save duration (line) of the last ' + pts.length + ' local snapshots'));
    root.append(svg('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, class: 'axis' }));
    root.append(svg('text', { x: 4, y: T + 4 }, bytes(maxSize)));
    root.append(svg('text', { x: W - R + 4, y: T + 4 }, seconds(maxDur)));
    root.append(svg('text', { x: 4, y: H - B }, '0'));
    var line = [];
    pts.forEach(function (p, i) {
      var h = (H - T - B) * p.size / maxSize;
      var x = L + i * step;
      var bar = svg('rect', { x: x + step * 0.15, y: H - B - h, width: Math.max(1, step * 0.7), height: h, class: 'size' });
      bar.append(svg('title', {}, p.name + ': ' + bytes(p.size) + ', ' + seconds(p.durationMs)));
      root.append(bar);
      var y = H - B - (H - T - B) * p.durationMs / maxDur;
      line.push((x + step / 2).toFixed(1) + ',' + y.toFixed(1));
      root.append(svg('circle', { cx: (x + step / 2).toFixed(1), cy: y.toFixed(1), r: 3, class: 'dot' }));
    });
    root.append(svg('polyline', { points: line.join(' '), class: 'duration' }));
    root.append(svg('text', { x: L, y: H - 8 }, short(pts[0].createdAt)));
    root.append(svg('text', { x: W - R, y: H - 8, 'text-anchor': 'end' }, short(pts[pts.length - 1].createdAt)));
    box.append(root);
    box.append(el('p', { class: 'muted' }, 'Bars: stored size (left scale). Line: save duration (right scale).'));
  }

  function renderSave(saving, last) {
    var running = !!saving || !!(last && last.running);
    $('save').disabled = running;
    $('progress').hidden = !running;
    var text = $('progress-text');
    var bar = $('progress-bar');
    if (saving) {
      if (saving.totalBytes > 0) { bar.max = saving.totalBytes; bar.value = Math.min(saving.bytes, saving.totalBytes); }
      else bar.removeAttribute('value');
      var secs = Math.max(0, Math.round((Date.now() - Date.parse(saving.startedAt)) / 1000));
      text.textContent = (saving.phase === 'committing' ? 'committing ' : 'saving ') + saving.name + ': ' + bytes(saving.bytes) +
        (saving.totalBytes > 0 ? ' of about ' + bytes(saving.totalBytes) : '') + ', ' + secs + ' s';
    } else if (running) { bar.removeAttribute('value'); text.textContent = 'saving...'; }
    var out = $('save-result');
    if (last && !last.running) {
      if (last.error) { out.className = 'error'; out.textContent = 'Save failed: ' + last.error; }
      else { out.className = 'ok'; out.textContent = 'Saved ' + (last.name || '') + (last.s3Error ? ' (S3 upload failed: ' + last.s3Error + ')' : ''); }
    } else out.textContent = '';
    return running;
  }

  async function poll() {
    clearTimeout(pollTimer);
    var r = await call('GET', '/ui/progress');
    if (r.status === 401) { show('login'); return; }
    var running = renderSave(r.data.saving, r.data.lastSave);
    if (running) pollTimer = setTimeout(poll, 500);
    else await load();
  }

  async function saveNow() {
    $('save').disabled = true;
    var r = await call('POST', '/ui/save', {});
    if (r.status === 401) { show('login'); return; }
    if (r.status !== 202) { $('save').disabled = false; fail(r.data.error || ('error ' + r.status)); return; }
    fail('');
    renderSave(undefined, { running: true });
    poll();
  }

  function confirmDelete(name) {
    var d = $('confirm');
    $('confirm-name').textContent = name;
    d.returnValue = '';
    d.onclose = async function () {
      if (d.returnValue !== 'ok') return;
      var r = await call('POST', '/ui/delete', { name: name });
      if (r.status === 401) { show('login'); return; }
      fail(r.status === 200 ? '' : (r.data.error || ('error ' + r.status)));
      await load();
    };
    d.showModal();
  }

  async function login(ev) {
    ev.preventDefault();
    var err = $('login-error');
    err.hidden = true;
    var r = await call('POST', '/ui/login', { token: $('token').value.trim() });
    $('token').value = '';
    if (r.status !== 200) {
      err.textContent = r.status === 401 ? 'Wrong token.' : (r.data.error || ('error ' + r.status));
      err.hidden = false;
      return;
    }
    csrf = r.data.csrf;
    await load();
  }

  async function logout() {
    await call('POST', '/ui/logout', {});
    csrf = '';
    show('login');
  }

  document.addEventListener('DOMContentLoaded', function () {
    $('login-form').addEventListener('submit', login);
    $('logout').addEventListener('click', logout);
    $('save').addEventListener('click', saveNow);
    $('refresh').addEventListener('click', load);
    load().then(function () { if (!$('app').hidden && $('save').disabled) poll(); });
  });
})();
`;
