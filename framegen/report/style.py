"""The listening report's stylesheet and script, inlined into every page (no file to lose, nothing to fetch)."""

CSS = """
:root{--fg:#1d1f23;--muted:#5c6370;--bg:#fff;--card:#f5f6f8;--line:#d9dde3;--link:#1f5fa8;
--bad:#a4261d;--badbg:#fde4e1;--warn:#7a5200;--warnbg:#fff1cc;--ok:#1b6a34;--okbg:#def3e4;color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--fg:#e6e8eb;--muted:#a2a9b4;--bg:#16181c;--card:#1f2329;--line:#343a43;
--link:#8cb8f0;--bad:#ffb4a8;--badbg:#5c1a14;--warn:#ffd480;--warnbg:#4a3500;--ok:#9be0ae;--okbg:#173b22}}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1120px;margin:0 auto;padding:12px 16px 48px}
a{color:var(--link)}
h1{font-size:1.55rem;margin:.5em 0 .1em;overflow-wrap:anywhere}
h2{font-size:1.25rem;margin:1.8em 0 .5em;padding-bottom:.2em;border-bottom:1px solid var(--line)}
h3{font-size:1.05rem;margin:.2em 0 .3em;overflow-wrap:anywhere}
code{font-size:.9em;overflow-wrap:anywhere}
.muted{color:var(--muted);font-size:.9rem;margin:.2em 0}
header p{margin:0;overflow-wrap:anywhere}
nav.toc{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:8px 16px;margin:12px 0}
nav.toc ol{margin:.3em 0;padding-left:1.4em;columns:2 15em}
img{max-width:100%;height:auto;display:block;margin:8px 0;border-radius:4px;background:#fff}
img.narrow{max-width:min(100%,720px)}
audio{width:100%;max-width:560px;display:block}
figure.player{margin:6px 0}
figure.player figcaption{font-size:.9rem;font-weight:600}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:.4em 0}
dl.kv dt{color:var(--muted)}dl.kv dd{margin:0;overflow-wrap:anywhere}
dl.defs dt{font-weight:600;font-family:ui-monospace,monospace;font-size:.9rem}dl.defs dd{margin:0 0 .6em 1em}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(250px,1fr));gap:0 24px}
.clip,.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 14px;margin:12px 0}
.pick{display:grid;grid-template-columns:minmax(0,560px) auto;gap:4px 12px;align-items:end}
.timeline{display:grid;grid-auto-flow:column;grid-auto-columns:minmax(240px,1fr);gap:10px;overflow-x:auto;
padding-bottom:6px}
.timeline .card{margin:0}
.trials{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:12px}
.trials .card{margin:0}
.metrics{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:1px 16px;font-size:.88rem;
font-variant-numeric:tabular-nums;margin-top:6px}
.metrics .k{color:var(--muted)}.metrics .k[title]{text-decoration:underline dotted;cursor:help}
.flag{display:inline-block;padding:0 .55em;border-radius:1em;font-size:.8rem;font-weight:600;margin:2px 4px 2px 0;
vertical-align:middle}
.flag.bad{color:var(--bad);background:var(--badbg)}.flag.warn{color:var(--warn);background:var(--warnbg)}
.flag.ok{color:var(--ok);background:var(--okbg)}.flag.none{color:var(--muted);background:var(--card);font-weight:400}
.missing{border-left:4px solid var(--warn);background:var(--warnbg);padding:4px 14px;border-radius:4px;margin:12px 0}
.missing h2{border:0;margin:.4em 0;font-size:1.05rem}
.gone{color:var(--bad);font-size:.9rem}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;max-width:100%}
table{border-collapse:collapse;font-size:.86rem;font-variant-numeric:tabular-nums}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
td.num{text-align:right}
thead th{position:sticky;top:0;background:var(--bg)}
th button{font:inherit;font-weight:600;color:inherit;background:none;border:0;padding:0;cursor:pointer}
th[aria-sort=ascending] button::after{content:" ▲"}th[aria-sort=descending] button::after{content:" ▼"}
button.playall{font:inherit;padding:4px 12px;border-radius:6px;border:1px solid var(--line);background:var(--card);
color:var(--fg);cursor:pointer}
footer{margin-top:3em}
@media (max-width:640px){main{padding:8px 10px 40px}h1{font-size:1.3rem}.pick{grid-template-columns:1fr}
dl.kv{grid-template-columns:1fr}dl.kv dt{margin-top:.4em}}
"""

JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.querySelector('button').addEventListener('click', function () {
      var asc = th.getAttribute('aria-sort') !== 'ascending';
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var value = function (row) {
        var c = row.cells[col], v = c.hasAttribute('data-v') ? c.getAttribute('data-v') : c.textContent.trim();
        var n = Number(v);
        return v === '' ? null : (isNaN(n) ? v.toLowerCase() : n);
      };
      rows.sort(function (a, b) {
        var x = value(a), y = value(b);
        if (x === null || y === null) { return x === y ? 0 : (x === null ? 1 : -1); }  // blanks last
        if (typeof x !== typeof y) { x = String(x); y = String(y); }
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
document.querySelectorAll('button.playall').forEach(function (button) {
  button.addEventListener('click', function () {
    var players = document.querySelectorAll('#' + button.getAttribute('data-target') + ' audio');
    players.forEach(function (a, i) {
      a.onended = function () { var next = players[i + 1]; if (next) { next.currentTime = 0; next.play(); } };
    });
    if (players.length) { players[0].currentTime = 0; players[0].play(); }
  });
});
"""
