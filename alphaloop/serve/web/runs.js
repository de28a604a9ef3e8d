// Runs: the runs under the server's --runs directory (GET /api/runs, refreshed every few seconds), and one
// run's stages, report, plots and learning curves (#/runs/NAME). The curves are drawn from metrics.jsonl
// as an inline SVG; while the run is running the page polls GET /api/runs/NAME/metrics?since=OFFSET and
// adds the new records, so the curves grow as the run trains.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const LIST_EVERY_MS = 5000;
  const CURVE_EVERY_MS = 2000;
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"];
  let timer = null;
  let view = 0;          // bumped whenever the page changes: an answer for an older view schedules nothing
  let detail = null;     // {name, status, records, next, file}

  function stop() {
    clearTimeout(timer);
    timer = null;
    view += 1;
  }

  function metricsText(metrics) {
    return Object.entries(metrics).map(([k, v]) => `${k} ${App.fmt(v)}`).join(", ");
  }

  function ago(seconds) {
    if (!seconds) return "";
    const s = Math.max(0, Date.now() / 1000 - seconds);
    return s < 90 ? `${Math.round(s)} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago` :
      s < 172800 ? `${Math.round(s / 3600)} h ago` : new Date(seconds * 1000).toLocaleDateString();
  }

  function stageChips(stages) {
    return App.el("span", {class: "stages"}, ...stages.map((s) =>
      App.el("span", {class: `chip ${s.status}`, title: `${s.kind || "?"}: ${s.status}`, text: s.name || "?"})));
  }

  async function showList() {
    const mine = view;
    try {
      const data = await App.json("/api/runs");
      App.error("runs-error", "");
      $("runs-root").textContent = data.root === null ?
        "No runs directory: start the server with --runs DIR (or from a directory holding runs/)." :
        `${data.data.length} run(s) under ${data.root}; running = log written in the last ${data.recent_s} s.`;
      const rows = data.data.map((run) => App.el("tr", {"data-run": run.name},
        App.el("td", {}, App.el("a", {href: `#/runs/${encodeURIComponent(run.name)}`, text: run.name})),
        App.el("td", {text: run.recipe || ""}),
        App.el("td", {text: run.env || ""}),
        App.el("td", {}, stageChips(run.stages)),
        App.el("td", {}, App.el("span", {class: `badge ${run.status}`, text: run.status,
          title: run.notes.join("\n")})),
        App.el("td", {class: "metrics", text: metricsText(run.key_metrics)}),
        App.el("td", {text: ago(run.updated)}),
        App.el("td", {}, run.report ? App.el("a", {href: run.report, class: "report-link", text: "report"}) : "")));
      if (mine !== view) return;
      $("runs-table").tBodies[0].replaceChildren(...rows);
    } catch (error) {
      App.error("runs-error", error.message);
    }
    if (mine === view) timer = setTimeout(showList, LIST_EVERY_MS);
  }

  // Curves: a training record {stage, step, loss, ...} adds a point to `key` for its stage; an eval record
  // (kind "eval") to `eval split decoder key`. Steps restart at each stage, so x is the step plus the
  // steps of the stages before it.
  function series(records) {
    const out = {};
    const offsets = {};
    let end = 0;
    for (const r of records) {
      const stage = r.stage || "run";
      if (!(stage in offsets)) offsets[stage] = end;
      const x = offsets[stage] + (Number(r.step) || 0);
      end = Math.max(end, x);
      const prefix = r.kind === "eval" ? `eval ${r.split || ""} ${r.decoder || ""} `.replace(/ +/g, " ") : "";
      for (const [key, value] of Object.entries(r)) {
        if (typeof value !== "number" || !Number.isFinite(value) || ["step", "stage_index", "time_s"].includes(key)) continue;
        const byStage = out[prefix + key] || (out[prefix + key] = {});
        (byStage[stage] || (byStage[stage] = [])).push([x, value]);
      }
    }
    return out;
  }

  function plot(curves) {
    const width = 720, height = 280, left = 56, right = 12, top = 12, bottom = 28;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("class", "curve");
    const add = (tag, attrs, text) => {
      const node = document.createElementNS(SVG, tag);
      for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
      if (text !== undefined) node.textContent = text;
      svg.append(node);
      return node;
    };
    const points = Object.values(curves).flat();
    if (!points.length) {
      add("text", {x: width / 2, y: height / 2, "text-anchor": "middle", class: "axis"}, "no points yet");
      return svg;
    }
    let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
    for (const [x, y] of points) {
      x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
    }
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) { y1 += 0.5; y0 -= 0.5; }
    const sx = (x) => left + (x - x0) / (x1 - x0) * (width - left - right);
    const sy = (y) => top + (1 - (y - y0) / (y1 - y0)) * (height - top - bottom);
    add("rect", {x: left, y: top, width: width - left - right, height: height - top - bottom, class: "frame"});
    for (let i = 0; i <= 4; i++) {
      const y = y0 + (y1 - y0) * i / 4;
      add("line", {x1: left, x2: width - right, y1: sy(y), y2: sy(y), class: "grid"});
      add("text", {x: left - 4, y: sy(y) + 4, "text-anchor": "end", class: "axis"}, App.fmt(Number(y.toPrecision(3))));
    }
    add("text", {x: left, y: height - 8, class: "axis"}, `step ${Math.round(x0)}`);
    add("text", {x: width - right, y: height - 8, "text-anchor": "end", class: "axis"}, `step ${Math.round(x1)}`);
    Object.entries(curves).forEach(([stage, pts], i) => {
      const color = COLORS[i % COLORS.length];
      const step = Math.max(1, Math.floor(pts.length / 1500));    // at most ~1500 vertices per line
      const d = pts.filter((_, j) => j % step === 0 || j === pts.length - 1)
        .map(([x, y], j) => `${j ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join("");
      add("path", {d, stroke: color, fill: "none", "stroke-width": 1.5, "data-stage": stage});
      if (pts.length < 40) for (const [x, y] of pts) add("circle", {cx: sx(x), cy: sy(y), r: 2.5, fill: color});
      add("text", {x: left + 120 + 110 * i, y: height - 8, fill: color, class: "legend"}, `— ${stage}`);
    });
    return svg;
  }

  function drawCurves() {
    const all = series(detail.records);
    const select = $("run-curve");
    const names = Object.keys(all).sort();
    const wanted = select.value || (names.includes("loss") ? "loss" : names[0]);
    if (names.join("\n") !== [...select.options].map((o) => o.value).join("\n")) {
      select.replaceChildren(...names.map((n) => App.el("option", {value: n, text: n})));
    }
    if (wanted) select.value = wanted;
    $("run-chart").replaceChildren(plot(all[select.value] || {}));
    $("run-chart").dataset.points = String(detail.records.length);
  }

  async function pollMetrics(mine) {
    const query = `since=${detail.next}` + (detail.file ? `&file=${encodeURIComponent(detail.file)}` : "");
    const data = await App.json(`/api/runs/${encodeURIComponent(detail.name)}/metrics?${query}`);
    if (mine !== view) return false;
    if (data.reset) detail.records = [];
    detail.records.push(...data.data);
    detail.next = data.next;
    detail.file = data.file;
    drawCurves();
    return data.more;
  }

  async function refreshDetail(name) {
    const mine = view;
    try {
      const run = await App.json(`/api/runs/${encodeURIComponent(name)}`);
      if (mine !== view) return;
      App.error("runs-error", "");
      detail.status = run.status;
      $("run-title").textContent = run.name;
      $("run-meta").replaceChildren(
        App.el("span", {class: `badge ${run.status}`, text: run.status}),
        ` recipe ${run.recipe || "?"}, env ${run.env || "?"}, updated ${ago(run.updated)} `,
        run.report ? App.el("a", {href: run.report, class: "report-link", text: "open the report"}) : "no report yet");
      $("run-stages").replaceChildren(
        App.el("tr", {}, ...["#", "stage", "kind", "status", "steps", "final metrics"].map((h) => App.el("th", {text: h}))),
        ...run.stages.map((s) => App.el("tr", {}, App.el("td", {text: s.index}), App.el("td", {text: s.name || ""}),
          App.el("td", {text: s.kind || ""}), App.el("td", {}, App.el("span", {class: `chip ${s.status}`, text: s.status})),
          App.el("td", {text: s.steps ?? ""}), App.el("td", {class: "metrics", text: metricsText(s.final)}))));
      $("run-plots").replaceChildren(...run.plots.map((src) => App.el("img", {src, alt: src.split("/").pop()})));
      $("run-notes").replaceChildren(...run.notes.map((n) => App.el("li", {text: n})));
      while (await pollMetrics(mine)) { /* a long log arrives in several answers */ }
      if (mine !== view) return;
      $("run-live").textContent = run.status === "running" ?
        `live: ${detail.records.length} records, refreshed every ${CURVE_EVERY_MS / 1000} s` :
        `${detail.records.length} records`;
    } catch (error) {
      App.error("runs-error", error.message);
    }
    if (mine === view && detail.status === "running") {
      timer = setTimeout(() => refreshDetail(name), CURVE_EVERY_MS);
    }
  }

  $("run-curve").addEventListener("change", () => detail && drawCurves());

  App.page("runs", {
    show(name) {
      stop();
      $("runs-list").hidden = Boolean(name);
      $("run-detail").hidden = !name;
      if (!name) {
        detail = null;
        showList();
        return;
      }
      detail = {name, status: null, records: [], next: 0, file: null};
      $("run-curve").replaceChildren();
      $("run-chart").replaceChildren();
      refreshDetail(name);
    },
    hide() {
      stop();
      detail = null;
    },
  });
})();
