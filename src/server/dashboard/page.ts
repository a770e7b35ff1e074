/**
 * The dashboard's page and style (docs/dashboard.md), served as is by routes.ts. The page
 * holds no data and no inline script or style (the API's Content-Security-Policy allows
 * only `'self'`); app.ts fills it. Readable on a phone: one column, the table as cards.
 */

export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>etcdsnap</title>
<link rel="stylesheet" href="/ui/app.css">
<script src="/ui/app.js" defer></script>
</head>
<body>
<header><h1>etcdsnap</h1><span id="node"></span><button id="logout" type="button" hidden>Log out</button></header>

<main id="login" hidden>
  <form id="login-form" autocomplete="off">
    <h2>Log in</h2>
    <label for="token">Cluster token <small>(the secret after <code>::server:</code>, or the whole token)</small></label>
    <input id="token" name="token" type="password" required spellcheck="false">
    <button type="submit">Log in</button>
    <p id="login-error" class="error" role="alert" hidden></p>
  </form>
</main>

<main id="app" hidden>
  <section class="cards">
    <div class="card"><h2>Schedule</h2><dl id="schedule"></dl></div>
    <div class="card"><h2>Last failure</h2><p id="last-failure" class="muted">none</p></div>
    <div class="card">
      <h2>Save now</h2>
      <button id="save" type="button">Save snapshot now</button>
      <div id="progress" hidden><progress id="progress-bar"></progress><span id="progress-text"></span></div>
      <p id="save-result" role="status"></p>
    </div>
  </section>
  <section class="card">
    <h2>Size and duration</h2>
    <div id="chart" aria-label="snapshot size and save duration over time"></div>
  </section>
  <section class="card">
    <h2>Snapshots <button id="refresh" type="button" class="small">Refresh</button></h2>
    <p id="s3-error" class="error" hidden></p>
    <table id="snapshots">
      <thead><tr><th>Name</th><th>Node</th><th>Location</th><th>Size</th><th>Created</th><th>Format</th><th>Status</th><th>Drill</th><th></th></tr></thead>
      <tbody></tbody>
    </table>
    <p id="empty" class="muted" hidden>No snapshots yet.</p>
  </section>
  <p id="error" class="error" role="alert" hidden></p>
</main>

<dialog id="confirm">
  <form method="dialog">
    <p>Delete <strong id="confirm-name"></strong>? Its S3 copy is deleted too.</p>
    <menu><button value="cancel" id="confirm-cancel">Cancel</button><button value="ok" id="confirm-ok" class="danger">Delete</button></menu>
  </form>
</dialog>
</body>
</html>
`;

export const PAGE_CSS = `:root { color-scheme: light dark; --fg: #1b1f24; --bg: #f6f7f9; --card: #fff; --line: #d6dae0; --muted: #5d6670; --accent: #2563eb; --bad: #b42318; --good: #137333; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e8eb; --bg: #111418; --card: #1a1e24; --line: #2e343c; --muted: #9aa3ad; --accent: #6ea1ff; --bad: #ff8a80; --good: #7ee2a8; } }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; font: 15px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 1rem; padding: .6rem 1rem; border-bottom: 1px solid var(--line); background: var(--card); }
header h1 { font-size: 1.15rem; margin: 0; }
header #node { color: var(--muted); flex: 1; }
main { max-width: 1200px; margin: 0 auto; padding: 1rem; }
h2 { font-size: 1rem; margin: 0 0 .5rem; display: flex; align-items: center; gap: .5rem; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 1rem; margin-bottom: 1rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .8rem 1rem; margin-bottom: 1rem; overflow-x: auto; }
.cards .card { margin-bottom: 0; }
dl { display: grid; grid-template-columns: auto 1fr; gap: .15rem .8rem; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; overflow-wrap: anywhere; }
button { font: inherit; padding: .4rem .9rem; border-radius: 6px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; }
button:disabled { opacity: .55; cursor: default; }
button.small { padding: .1rem .5rem; font-size: .85rem; }
button.link { background: none; color: var(--accent); border-color: var(--line); padding: .1rem .5rem; font-size: .85rem; }
button.danger, button.link.danger { color: var(--bad); border-color: var(--bad); background: none; }
a { color: var(--accent); }
.error { color: var(--bad); overflow-wrap: anywhere; }
.muted { color: var(--muted); }
.ok { color: var(--good); }
#login-form { max-width: 420px; margin: 3rem auto; display: flex; flex-direction: column; gap: .6rem; background: var(--card); padding: 1.2rem; border: 1px solid var(--line); border-radius: 8px; }
#login-form input { font: inherit; padding: .45rem; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--fg); }
#progress { display: flex; align-items: center; gap: .6rem; margin-top: .5rem; }
#progress progress { flex: 1; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
td.num { text-align: right; white-space: nowrap; }
td.loc { overflow-wrap: anywhere; max-width: 28rem; }
td.actions { white-space: nowrap; }
td.actions > * { margin-right: .3rem; }
.badge { display: inline-block; padding: 0 .4rem; border-radius: 4px; font-size: .8rem; border: 1px solid var(--line); margin-right: .2rem; }
.status-failed { color: var(--bad); }
.status-successful { color: var(--good); }
.drill-passed { color: var(--good); }
.drill-failed { color: var(--bad); }
.note { font-size: .8rem; }
#chart svg { width: 100%; height: auto; max-height: 260px; display: block; }
#chart .size { fill: var(--accent); }
#chart .duration { stroke: var(--bad); fill: none; stroke-width: 2; }
#chart .dot { fill: var(--bad); }
#chart text { fill: var(--muted); font-size: 11px; }
#chart .axis { stroke: var(--line); }
dialog { border: 1px solid var(--line); border-radius: 8px; background: var(--card); color: var(--fg); max-width: min(92vw, 480px); }
dialog menu { display: flex; justify-content: flex-end; gap: .5rem; padding: 0; margin: 0; }
dialog p { overflow-wrap: anywhere; }
@media (max-width: 720px) {
  main { padding: .6rem; }
  thead { display: none; }
  table, tbody, tr, td { display: block; width: 100%; }
  tr { border: 1px solid var(--line); border-radius: 6px; margin-bottom: .6rem; padding: .3rem .5rem; }
  td { border: none; padding: .15rem 0; text-align: left; }
  td.num { text-align: left; }
  td[data-label]::before { content: attr(data-label) ": "; color: var(--muted); }
}
`;
