// tritonwatch dashboard. Data comes from <script type="application/json"> tags written by the
// server; user strings only ever reach the DOM through textContent, and reach Plotly
// HTML-escaped (Plotly parses a subset of HTML in labels, so "<" must arrive as "&lt;"; it
// decodes only a few named entities, so quotes go as numeric ones, never "&quot;").
"use strict";
(function () {
  const TOKEN_KEY = "tritonwatch.token";
  const PLOT_CONFIG = { responsive: true, displaylogo: false,
    toImageButtonOptions: { format: "png", scale: 2, filename: "tritonwatch-" + document.body.dataset.page } };

  function data(id) {
    const el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }
  function esc(s) {
    return String(s == null ? "" : s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&#34;").replace(/'/g, "&#39;");
  }
  function flash(message, isError) {
    const el = document.getElementById("flash");
    el.textContent = message;
    el.className = "flash" + (isError ? " error" : "");
    el.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => { el.hidden = true; }, 6000);
  }
  function token() { return localStorage.getItem(TOKEN_KEY) || ""; }
  function askToken() {
    const t = window.prompt("Token for triage and saving views (stored in this browser only):", token());
    if (t !== null) { localStorage.setItem(TOKEN_KEY, t.trim()); flash(t.trim() ? "Token set" : "Token cleared"); }
    return token();
  }
  async function post(url, body) {
    let t = token();
    if (!t) t = askToken();
    if (!t) throw new Error("a token is needed for this action");
    const resp = await fetch(url, { method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "Authorization": "Bearer " + t } });
    const payload = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(payload.error || ("HTTP " + resp.status));
    return payload;
  }
  function shapeText(shape) {
    try { const d = typeof shape === "string" ? JSON.parse(shape) : shape;
      return Object.entries(d).map(([k, v]) => k + "=" + v).join(" "); } catch (e) { return String(shape); }
  }

  // -- header: token and save view ------------------------------------------------------------
  const tokenButton = document.getElementById("token-button");
  if (tokenButton) tokenButton.addEventListener("click", askToken);
  const saveButton = document.getElementById("save-view");
  if (saveButton) saveButton.addEventListener("click", async () => {
    const name = window.prompt("Save this view as:");
    if (!name) return;
    try {
      const v = await post("/api/v1/views", { name: name.trim(), page: document.body.dataset.page,
        query: location.search.replace(/^\?/, "") });
      flash("Saved view \u201c" + v.name + "\u201d (see Saved views)");
    } catch (e) { flash("Could not save the view: " + e.message, true); }
  });

  // -- overview heat map ----------------------------------------------------------------------
  function heatmap() {
    const h = data("heatmap-data"), el = document.getElementById("heatmap");
    if (!h || !el || !window.Plotly) return;
    const text = h.z.map((row, i) => row.map((v, j) => v == null ? "no data" :
      (v > 0 ? "+" : "") + v.toFixed(2) + "% (" + h.n[i][j] + " series)"));
    const lim = Math.max(5, ...h.z.flat().filter(v => v != null).map(Math.abs));
    Plotly.newPlot(el, [{
      type: "heatmap", z: h.z, x: h.columns.map(esc), y: h.operators.map(esc), text: text,
      hovertemplate: "%{y} · %{x}<br>%{text}<extra></extra>", zmin: -lim, zmax: lim, zmid: 0,
      colorscale: [[0, "#2b8a3e"], [0.5, "#f8f9fa"], [1, "#c92a2a"]],
      colorbar: { title: { text: "% change" }, ticksuffix: "%" }, xgap: 2, ygap: 2,
    }], { margin: { l: 140, r: 20, t: 10, b: 90 }, xaxis: { type: "category", automargin: true },
      yaxis: { type: "category", autorange: "reversed" } }, PLOT_CONFIG);
    el.on("plotly_click", (ev) => {
      const p = ev.points[0];
      const link = h.links[p.pointIndex[0]][p.pointIndex[1]];
      if (link) location.href = "/series?" + new URLSearchParams(link).toString();
    });
  }

  // -- series explorer ------------------------------------------------------------------------
  // 24 distinct colours (Plotly's Dark24), one per series the explorer draws at most: Plotly's
  // default palette has 10 and repeats them.
  const COLORS = ["#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#222A2A", "#B68100",
    "#750D86", "#EB663B", "#511CFB", "#00A08B", "#FB00D1", "#FC0080", "#B2828D", "#6C7C32",
    "#778AAE", "#862A16", "#A777F1", "#620042", "#1616A7", "#DA60CA", "#6C4516", "#0D2A63",
    "#AF0038"];
  function seriesChart() {
    const d = data("series-data"), el = document.getElementById("series-chart");
    if (!d || !el || !window.Plotly) return;
    const traces = d.traces.map((tr) => {
      const pts = tr.points;
      return {
        type: "scatter", mode: "lines+markers", name: esc(tr.label), x: pts.map(p => p.t), y: pts.map(p => p.value),
        error_y: { type: "data", symmetric: false, thickness: 1, width: 2,
          array: pts.map(p => p.ci_high != null && p.value != null ? p.ci_high - p.value : null),
          arrayminus: pts.map(p => p.ci_low != null && p.value != null ? p.value - p.ci_low : null) },
        customdata: pts.map(p => [esc(p.run.slice(0, 8)), esc(p.build), esc(p.commit ? p.commit.slice(0, 12) : "–"),
          esc(p.label || ""), p.run, p.n]),
        hovertemplate: "<b>%{y:.4g}</b> " + esc(d.unit) + "<br>%{x}<br>run %{customdata[0]} %{customdata[3]}<br>" +
          "triton %{customdata[1]} · commit %{customdata[2]}<br>n=%{customdata[5]}<extra>" + esc(tr.label) + "</extra>",
      };
    });
    // Alerts (change points): a triangle at the first bad point of the matching trace.
    const marks = { x: [], y: [], text: [], color: [], id: [] };
    for (const a of d.alerts) {
      const tr = d.traces.find(t => t.ref.series_id === a.series_id && t.ref.machine_id === a.machine_id);
      if (!tr) continue;
      const p = tr.points.find(q => q.run === a.run_uuid);
      if (!p) continue;
      marks.x.push(p.t); marks.y.push(p.value); marks.id.push(a.id);
      marks.text.push(esc("alert #" + a.id + ": " + a.direction + " " + ((a.ratio - 1) * 100).toFixed(1) + "% (" + a.status + ")"));
      marks.color.push(a.direction === "improvement" ? "#2b8a3e" : "#c92a2a");
    }
    if (marks.x.length) traces.push({ type: "scatter", mode: "markers", name: "change points", x: marks.x, y: marks.y,
      text: marks.text, customdata: marks.id, hovertemplate: "%{text}<extra></extra>",
      marker: { symbol: "triangle-down", size: 16, color: marks.color, line: { width: 1, color: "#000" } } });
    const shapes = marks.x.map(x => ({ type: "line", xref: "x", yref: "paper", x0: x, x1: x, y0: 0, y1: 1,
      line: { color: "#c92a2a", width: 1, dash: "dot" } }));
    Plotly.newPlot(el, traces, {
      margin: { l: 70, r: 20, t: 10, b: 50 }, hovermode: "closest", shapes: shapes,
      xaxis: { type: "date", rangeslider: { visible: false } },
      yaxis: d.scale === "log"
        ? { title: { text: esc((d.norm === "none" ? d.unit : "ratio (" + d.norm + ")") + ", log scale") }, type: "log" }
        : { title: { text: esc(d.norm === "none" ? d.unit : "ratio (" + d.norm + ")") }, rangemode: "tozero" },
      legend: { orientation: "h", y: -0.15 },
      colorway: COLORS,
    }, PLOT_CONFIG);
    el.on("plotly_click", (ev) => {
      const p = ev.points[0];
      if (p.data.name === "change points") location.href = "/alerts/" + encodeURIComponent(p.customdata);
      else if (p.customdata && p.customdata[4]) location.href = "/runs/" + encodeURIComponent(p.customdata[4]);
    });
  }

  // -- alert page ---------------------------------------------------------------------------
  function distChart() {
    const d = data("dist-data"), el = document.getElementById("dist-chart");
    if (!d || !el || !window.Plotly) return;
    const mk = (name, ys, color) => ({ type: "violin", name: name, y: ys, box: { visible: true },
      meanline: { visible: true }, points: "all", jitter: 0.4, pointpos: 0, marker: { size: 3, opacity: 0.5 },
      line: { color: color }, hoverinfo: "y" });
    Plotly.newPlot(el, [mk("before (last good)", d.before, "#3b5bdb"), mk("after (first bad on)", d.after, "#c92a2a")],
      { margin: { l: 70, r: 20, t: 10, b: 40 }, showlegend: false, yaxis: { title: { text: esc(d.unit) } } }, PLOT_CONFIG);
  }
  document.querySelectorAll("button.triage").forEach((b) => b.addEventListener("click", async () => {
    const id = b.closest(".triage-buttons").dataset.alert;
    const note = (document.getElementById("triage-note") || {}).value || null;
    try {
      await post("/api/v1/alerts/" + encodeURIComponent(id) + "/status", { status: b.dataset.status, note: note });
      flash("Alert marked " + b.dataset.status);
      setTimeout(() => location.reload(), 400);
    } catch (e) { flash("Triage failed: " + e.message, true); }
  }));

  // -- API docs (offline: built from /openapi.json) ---------------------------------------------
  async function apiDocs() {
    const root = document.getElementById("api-endpoints");
    if (!root) return;
    const spec = await (await fetch("/openapi.json")).json();
    root.textContent = "";
    for (const [path, ops] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const div = document.createElement("div"); div.className = "ep";
        const m = document.createElement("span"); m.className = "method " + method; m.textContent = method.toUpperCase();
        const a = document.createElement(method === "get" && !path.includes("{") ? "a" : "span");
        a.className = "mono"; a.textContent = path; if (a.tagName === "A") a.href = path;
        const sum = document.createElement("span"); sum.className = "muted"; sum.textContent = "  " + (op.summary || "");
        div.append(m, a, sum);
        const params = (op.parameters || []).map(p => p.name + (p.required ? "*" : ""));
        if (op.requestBody) params.push("JSON body");
        if (params.length) { const ps = document.createElement("div"); ps.className = "params"; ps.textContent = params.join(", "); div.append(ps); }
        root.append(div);
      }
    }
  }

  function start() { heatmap(); seriesChart(); distChart(); apiDocs().catch(e => flash(e.message, true)); }
  if (document.readyState === "complete") start(); else window.addEventListener("load", start);
})();
