/**
 * The console's only stylesheet and script, served as files from `/console/assets/` so the
 * Content-Security-Policy can forbid inline script and style. They live in this module as text
 * (not files on disk) so the bundled API (`pnpm build`) carries them without a copy step.
 */

export const CONSOLE_CSS = `
:root { --fg:#1a1a1a; --muted:#4a4a4a; --bg:#fff; --panel:#f4f5f7; --line:#c9ccd1;
  --accent:#0b57d0; --accent-fg:#fff; --danger:#a50e0e; --ok:#0b6b2b; --warn:#7a4b00; }
* { box-sizing: border-box; }
body { margin:0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color:var(--fg); background:var(--bg); }
a { color:var(--accent); }
.skip { position:absolute; left:-9999px; top:0; }
.skip:focus { left:8px; top:8px; background:var(--bg); padding:8px; z-index:10; }
header.top { display:flex; flex-wrap:wrap; gap:8px 16px; align-items:center; justify-content:space-between;
  padding:8px 16px; background:#14213d; color:#fff; }
header.top a, header.top .who { color:#fff; }
header.top .brand { font-weight:700; text-decoration:none; font-size:1.1rem; }
header.top form { margin:0; }
nav.main ul { display:flex; flex-wrap:wrap; gap:4px 12px; list-style:none; margin:0; padding:8px 16px;
  background:var(--panel); border-bottom:1px solid var(--line); }
nav.main a[aria-current="page"] { font-weight:700; text-decoration:underline; }
main { padding:16px; max-width:1200px; margin:0 auto; }
h1 { font-size:1.5rem; margin:8px 0 16px; }
h2 { font-size:1.2rem; margin:24px 0 8px; }
table { border-collapse:collapse; width:100%; margin:8px 0 16px; }
th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:var(--panel); }
.table-wrap { overflow-x:auto; }
form.stack { display:grid; gap:12px; max-width:640px; }
fieldset { border:1px solid var(--line); border-radius:6px; padding:12px; margin:0; display:grid; gap:12px; }
legend { font-weight:600; padding:0 4px; }
label { font-weight:600; display:block; }
.field { display:grid; gap:4px; }
.field .help { color:var(--muted); font-size:.9rem; margin:0; }
input[type=text], input[type=password], input[type=url], input[type=number], select, textarea {
  font:inherit; padding:6px 8px; border:1px solid #767676; border-radius:4px; width:100%; background:#fff; color:var(--fg); }
textarea { min-height:6rem; font-family: ui-monospace, Menlo, Consolas, monospace; }
input[aria-invalid=true], select[aria-invalid=true], textarea[aria-invalid=true], fieldset[aria-invalid=true] {
  border-color:var(--danger); border-width:2px; }
.issue { color:var(--danger); font-weight:600; margin:0; }
button, .button { font:inherit; padding:6px 14px; border-radius:4px; border:1px solid var(--accent);
  background:var(--accent); color:var(--accent-fg); cursor:pointer; text-decoration:none; display:inline-block; }
button.secondary { background:#fff; color:var(--accent); }
button.danger { background:var(--danger); border-color:var(--danger); }
:focus-visible { outline:3px solid #f5a300; outline-offset:2px; }
.actions { display:flex; flex-wrap:wrap; gap:8px; align-items:center; }
.actions form { margin:0; }
.notice { padding:8px 12px; border-radius:4px; border:1px solid var(--line); background:var(--panel); margin:8px 0 16px; }
.notice.error { border-color:var(--danger); color:var(--danger); background:#fdeeee; }
.notice.ok { border-color:var(--ok); color:var(--ok); background:#eaf6ee; }
.status-active, .status-delivered, .status-ok { color:var(--ok); font-weight:600; }
.status-error, .status-failed, .status-dead, .status-revoked { color:var(--danger); font-weight:600; }
pre, code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size:.9rem; }
pre { background:var(--panel); border:1px solid var(--line); padding:8px; overflow-x:auto; white-space:pre-wrap; word-break:break-all; }
.diff { display:grid; grid-template-columns:1fr 1fr; gap:12px; }
.diff .added { background:#e6f4ea; }
.diff .removed { background:#fce8e6; }
.diff pre { margin:0; }
.secret-once { border:2px solid var(--warn); padding:12px; border-radius:6px; }
dl.facts { display:grid; grid-template-columns:max-content 1fr; gap:4px 16px; }
dl.facts dt { font-weight:600; }
dl.facts dd { margin:0; overflow-wrap:anywhere; }
@media (max-width: 700px) {
  .diff { grid-template-columns:1fr; }
  main { padding:8px; }
  th, td { padding:4px; }
}
`;

/** Copy buttons and confirmations; every page works without it. */
export const CONSOLE_JS = `"use strict";
document.addEventListener("click", function (event) {
  var button = event.target instanceof Element ? event.target.closest("[data-copy]") : null;
  if (!button) return;
  var source = document.getElementById(button.getAttribute("data-copy"));
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.textContent || "").then(function () {
    var status = document.getElementById(button.getAttribute("data-copy") + "-copied");
    if (status) status.textContent = "Copied";
  });
});
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (!(form instanceof HTMLFormElement)) return;
  var question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) event.preventDefault();
});
`;
