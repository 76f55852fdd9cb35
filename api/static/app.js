// kgfuse web page: plain JS, no dependencies.
// SECURITY: every string from the request or the KG is inserted with textContent,
// createTextNode or setAttribute (SVG through createElementNS). Never innerHTML.
"use strict";

(() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const KEY_STORE = "kgfuse.apiKey";
  const MAX_NODE_CHARS = 40;
  const $ = (id) => document.getElementById(id);

  let topK = 5;
  let modelLoaded = false;

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // ---- DOM helpers (text only) ----------------------------------------------------------

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svgEl(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function shorten(text, max) {
    const chars = Array.from(String(text));
    return chars.length > max ? chars.slice(0, max - 1).join("") + "…" : chars.join("");
  }

  // ---- API key --------------------------------------------------------------------------

  function storedKey() {
    try {
      return sessionStorage.getItem(KEY_STORE) || "";
    } catch (_) {
      return "";
    }
  }

  function storeKey(key) {
    try {
      if (key) sessionStorage.setItem(KEY_STORE, key);
      else sessionStorage.removeItem(KEY_STORE);
    } catch (_) {
      /* storage may be disabled: the key then lives in the field only */
    }
  }

  function showKeyField() {
    const row = $("key-row");
    const wasHidden = row.hidden;
    row.hidden = false;
    if (wasHidden) $("key").focus();
  }

  // ---- HTTP -----------------------------------------------------------------------------

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    const key = $("key").value.trim();
    if (key) headers.Authorization = "Bearer " + key;
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, "network", "could not reach the server: " + e.message);
    }
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const err = data && typeof data.error === "object" && data.error ? data.error : {};
      const message = typeof err.message === "string" && err.message
        ? err.message
        : `HTTP ${response.status} ${response.statusText}`;
      throw new ApiError(response.status, err.code || "http_error", message);
    }
    if (data === null) throw new ApiError(response.status, "bad_response", "the server's answer is not JSON");
    return data;
  }

  function showError(err) {
    const box = $("error");
    box.replaceChildren();
    box.textContent = err.message;
    box.dataset.status = String(err.status || "");
    box.dataset.code = err.code || "";
    box.hidden = false;
    if (err.status === 401) showKeyField();
  }

  function clearError() {
    const box = $("error");
    box.hidden = true;
    box.textContent = "";
  }

  // ---- model info -----------------------------------------------------------------------

  async function loadModel() {
    const info = $("model-info");
    try {
      const model = await api("GET", "v1/model");
      modelLoaded = true;
      const parts = [];
      parts.push("model " + String(model.version || "?"));
      if (model.mode) parts.push(String(model.mode));
      if (Array.isArray(model.labels)) parts.push("labels: " + model.labels.map(String).join(", "));
      const kg = model.kg || {};
      if (kg.entities !== undefined) parts.push(`KG: ${kg.entities} entities, ${kg.triples} triples`);
      info.textContent = parts.join(" · ");
      info.classList.remove("warn");
      const limit = model.limits && Number(model.limits.max_top_k_paths);
      if (limit > 0) topK = Math.min(5, limit);
    } catch (err) {
      info.textContent = err.status === 401
        ? "an API key is needed to use this server"
        : "model information unavailable: " + err.message;
      info.classList.add("warn");
      if (err.status === 401) showKeyField();
    }
  }

  // ---- rendering ------------------------------------------------------------------------

  function renderHighlighted(container, text, entities) {
    container.replaceChildren();
    const chars = Array.from(String(text)); // offsets are code points, as in Python
    const spans = (Array.isArray(entities) ? entities : [])
      .filter((e) => Number.isInteger(e.start) && Number.isInteger(e.end) && e.end > e.start)
      .sort((a, b) => a.start - b.start || b.end - a.end);
    let pos = 0;
    let shown = 0;
    for (const e of spans) {
      if (e.start < pos || e.end > chars.length) continue; // overlapping or out of range
      if (e.start > pos) container.append(document.createTextNode(chars.slice(pos, e.start).join("")));
      const type = e.type && e.type !== "ENTITY" ? ` (${e.type})` : "";
      const mark = el("mark", { title: `${e.label}${type}\n${e.iri}` }, chars.slice(e.start, e.end).join(""));
      mark.dataset.iri = String(e.iri);
      container.append(mark);
      pos = e.end;
      shown += 1;
    }
    if (pos < chars.length) container.append(document.createTextNode(chars.slice(pos).join("")));
    $("entity-note").textContent = shown
      ? `${shown} mention${shown === 1 ? "" : "s"} linked to the KG; hover one for its IRI.`
      : "No mention in the text was linked to the KG.";
  }

  function renderBars(container, probabilities, predicted) {
    container.replaceChildren();
    const entries = Object.entries(probabilities || {})
      .map(([name, p]) => [name, Math.max(0, Math.min(1, Number(p) || 0))])
      .sort((a, b) => b[1] - a[1]);
    for (const [name, p] of entries) {
      const row = el("div", { class: name === predicted ? "bar top" : "bar" });
      const track = el("span", { class: "bar-track" });
      const fill = el("span", { class: "bar-fill" });
      fill.style.width = (p * 100).toFixed(2) + "%";
      track.append(fill);
      row.append(el("span", { class: "bar-name", title: name }, name), track,
        el("span", { class: "bar-value" }, (p * 100).toFixed(1) + "%"));
      container.append(row);
    }
  }

  // The nodes of a path in walking order, and for each hop whether it is walked
  // subject->object (forward). Null when the hops do not chain.
  function walk(hops) {
    if (!Array.isArray(hops) || hops.length === 0) return null;
    const same = (a, b) => a.iri === b.iri;
    let start = hops[0].subject;
    if (hops.length > 1) {
      const next = hops[1];
      const shared = (n) => same(n, next.subject) || same(n, next.object);
      if (shared(hops[0].subject) && !shared(hops[0].object)) start = hops[0].object;
    }
    const nodes = [start];
    const forward = [];
    let current = start;
    for (const hop of hops) {
      let fwd;
      if (same(hop.subject, current)) fwd = true;
      else if (same(hop.object, current)) fwd = false;
      else return null;
      current = fwd ? hop.object : hop.subject;
      forward.push(fwd);
      nodes.push(current);
    }
    return { nodes, forward };
  }

  function layoutOrder(hops) {
    const w = walk(hops);
    if (w) return w.nodes;
    const seen = new Set();
    const nodes = [];
    for (const hop of hops || []) {
      for (const n of [hop.subject, hop.object]) {
        if (!seen.has(n.iri)) {
          seen.add(n.iri);
          nodes.push(n);
        }
      }
    }
    return nodes;
  }

  function renderPathList(container, paths) {
    container.replaceChildren();
    for (const path of paths) {
      const li = el("li", { class: "path" });
      const words = el("span", { class: "path-words" });
      const w = walk(path.hops);
      if (w) {
        w.nodes.forEach((node, i) => {
          if (i > 0) {
            const pred = path.hops[i - 1].predicate;
            const label = pred.label || pred.iri;
            const arrow = w.forward[i - 1] ? `— ${label} →` : `← ${label} —`;
            words.append(el("span", { class: "pred", title: pred.iri }, arrow));
          }
          words.append(el("span", { class: "chip", title: node.iri }, node.label || node.iri));
        });
      } else {
        words.textContent = path.text;
      }
      const score = Number(path.score);
      li.append(words, el("span", {
        class: "score",
        title: "how much the predicted class's probability drops without this path",
      }, (score >= 0 ? "+" : "") + score.toFixed(4)));
      container.append(li);
    }
  }

  function measure(root, text, cls) {
    const probe = svgEl("text", { class: cls, x: 0, y: 0 }, text);
    root.append(probe);
    let width = 0;
    try {
      width = probe.getComputedTextLength();
    } catch (_) {
      width = 0;
    }
    probe.remove();
    return width > 0 ? width : Array.from(text).length * 7;
  }

  function drawGraph(container, paths, linked) {
    container.replaceChildren();
    const root = svgEl("svg", { role: "img", "aria-label": "supporting paths as a graph" });
    root.append(svgEl("title", {}, "supporting paths"));
    const defs = svgEl("defs");
    const marker = svgEl("marker", {
      id: "kgf-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse",
    });
    marker.append(svgEl("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow-head" }));
    defs.append(marker);
    root.append(defs);
    container.append(root); // attached so text can be measured

    // Nodes (merged by IRI) placed at their first occurrence: one row per path that adds nodes.
    const nodes = new Map();
    const edges = new Map();
    let rows = 0;
    for (const path of paths) {
      let added = false;
      layoutOrder(path.hops).forEach((n, col) => {
        if (!nodes.has(n.iri)) {
          nodes.set(n.iri, { iri: n.iri, label: n.label || n.iri, row: rows, col });
          added = true;
        }
      });
      if (added) rows += 1;
      for (const hop of path.hops || []) {
        const key = [hop.subject.iri, hop.predicate.iri, hop.object.iri].join("\u0000");
        if (!edges.has(key)) {
          edges.set(key, {
            from: hop.subject.iri, to: hop.object.iri,
            label: hop.predicate.label || hop.predicate.iri, iri: hop.predicate.iri,
          });
        }
      }
    }
    if (nodes.size === 0) {
      root.remove();
      container.append(el("p", { class: "note" }, "No supporting path was found for this text."));
      return;
    }

    const NODE_H = 32, PAD_X = 14, MARGIN = 16, ROW_H = 92;
    let maxNodeW = 0, maxCol = 0;
    for (const n of nodes.values()) {
      n.shown = shorten(n.label, MAX_NODE_CHARS);
      n.w = Math.ceil(measure(root, n.shown, "node-text")) + 2 * PAD_X;
      maxNodeW = Math.max(maxNodeW, n.w);
      maxCol = Math.max(maxCol, n.col);
    }
    let maxEdgeW = 0;
    for (const e of edges.values()) {
      e.shown = shorten(e.label, MAX_NODE_CHARS);
      maxEdgeW = Math.max(maxEdgeW, measure(root, e.shown, "edge-text"));
    }
    const colW = maxNodeW + Math.max(maxEdgeW + 36, 72);
    for (const n of nodes.values()) {
      n.x = MARGIN + maxNodeW / 2 + n.col * colW;
      n.y = MARGIN + NODE_H / 2 + n.row * ROW_H;
    }
    const width = Math.ceil(2 * MARGIN + maxNodeW + maxCol * colW);
    const height = Math.ceil(2 * MARGIN + NODE_H + (rows - 1) * ROW_H);
    root.setAttribute("width", width);
    root.setAttribute("height", height);
    root.setAttribute("viewBox", `0 0 ${width} ${height}`);

    // Where the line from a node's centre along (dx, dy) leaves its box.
    const exit = (n, dx, dy, gap) => {
      const hw = n.w / 2 + gap, hh = NODE_H / 2 + gap;
      const t = Math.min(dx ? hw / Math.abs(dx) : Infinity, dy ? hh / Math.abs(dy) : Infinity);
      return [n.x + dx * t, n.y + dy * t];
    };

    // Parallel edges between the same two nodes bend apart.
    const pairs = new Map();
    for (const e of edges.values()) {
      const key = [e.from, e.to].sort().join("\u0000");
      if (!pairs.has(key)) pairs.set(key, []);
      pairs.get(key).push(e);
    }
    const edgeLayer = svgEl("g", { class: "edges" });
    const labelLayer = svgEl("g", { class: "edge-labels" });
    for (const group of pairs.values()) {
      group.forEach((e, i) => {
        const a = nodes.get(e.from), b = nodes.get(e.to);
        if (!a || !b) return;
        const g = svgEl("g", { class: "edge" });
        g.append(svgEl("title", {}, `${e.label}\n${e.iri}`));
        const bend = (i - (group.length - 1) / 2) * 34;
        if (a === b) { // a self-loop
          const x = a.x, y = a.y - NODE_H / 2;
          g.append(svgEl("path", {
            d: `M ${x - 10} ${y} C ${x - 30} ${y - 46}, ${x + 30} ${y - 46}, ${x + 10} ${y}`,
            class: "edge-line", "marker-end": "url(#kgf-arrow)",
          }));
          edgeLayer.append(g);
          labelLayer.append(svgEl("text", { x, y: y - 40, class: "edge-text", "text-anchor": "middle" }, e.shown));
          return;
        }
        const dx = b.x - a.x, dy = b.y - a.y, len = Math.hypot(dx, dy) || 1;
        // normal, oriented the same way for both directions of a pair
        const sign = e.from < e.to ? 1 : -1;
        const nx = (-dy / len) * sign, ny = (dx / len) * sign;
        const cx = (a.x + b.x) / 2 + nx * bend * 2, cy = (a.y + b.y) / 2 + ny * bend * 2;
        const [x1, y1] = exit(a, cx - a.x, cy - a.y, 2);
        const [x2, y2] = exit(b, cx - b.x, cy - b.y, 4);
        g.append(svgEl("path", {
          d: `M ${x1.toFixed(1)} ${y1.toFixed(1)} Q ${cx.toFixed(1)} ${cy.toFixed(1)} ${x2.toFixed(1)} ${y2.toFixed(1)}`,
          class: "edge-line", "marker-end": "url(#kgf-arrow)",
        }));
        edgeLayer.append(g);
        const lx = (a.x + b.x) / 2 + nx * bend, ly = (a.y + b.y) / 2 + ny * bend;
        labelLayer.append(svgEl("text", {
          x: lx.toFixed(1), y: ly.toFixed(1), class: "edge-text",
          "text-anchor": "middle", "dominant-baseline": "central",
        }, e.shown));
      });
    }
    root.append(edgeLayer, labelLayer);

    const nodeLayer = svgEl("g", { class: "nodes" });
    for (const n of nodes.values()) {
      const g = svgEl("g", {
        class: linked.has(n.iri) ? "node linked" : "node",
        transform: `translate(${n.x.toFixed(1)} ${n.y.toFixed(1)})`,
      });
      g.append(svgEl("title", {}, `${n.label}\n${n.iri}`));
      g.append(svgEl("rect", { x: -n.w / 2, y: -NODE_H / 2, width: n.w, height: NODE_H, rx: NODE_H / 2 }));
      g.append(svgEl("text", { class: "node-text", "text-anchor": "middle", "dominant-baseline": "central" }, n.shown));
      nodeLayer.append(g);
    }
    root.append(nodeLayer);
  }

  function render(data) {
    const pred = data.predictions && data.predictions[0];
    if (!pred) throw new ApiError(0, "bad_response", "the server returned no prediction");
    const result = $("result");
    result.hidden = false; // visible before drawing, so SVG text can be measured

    $("label").textContent = pred.label;
    const meta = [];
    if (typeof pred.graph_weight === "number") meta.push(`graph weight ${pred.graph_weight.toFixed(2)}`);
    if (data.timings_ms && typeof data.timings_ms.total === "number") meta.push(`${Math.round(data.timings_ms.total)} ms`);
    if (data.model_version) meta.push(`model ${data.model_version}`);
    $("meta").textContent = meta.join(" · ");

    renderHighlighted($("highlighted"), pred.text, pred.entities);
    renderBars($("bars"), pred.probabilities, pred.label);

    const section = $("paths-section");
    if (Array.isArray(pred.paths)) {
      section.hidden = false;
      const linked = new Set((pred.entities || []).map((e) => e.iri));
      drawGraph($("paths-graph"), pred.paths, linked);
      renderPathList($("paths-list"), pred.paths);
    } else {
      section.hidden = true;
      $("paths-graph").replaceChildren();
      $("paths-list").replaceChildren();
    }
  }

  // ---- wiring ---------------------------------------------------------------------------

  async function submit(event) {
    if (event) event.preventDefault();
    const text = $("text").value;
    if (!text.trim()) {
      showError(new ApiError(0, "empty_text", "type some text to classify"));
      $("text").focus();
      return;
    }
    const button = $("predict");
    if (button.disabled) return;
    button.disabled = true;
    button.textContent = "Predicting…";
    clearError();
    try {
      const data = await api("POST", "v1/predict", {
        texts: [text],
        explain: $("explain").checked,
        top_k_paths: topK,
      });
      render(data);
      if (!modelLoaded) loadModel();
    } catch (err) {
      showError(err instanceof ApiError ? err : new ApiError(0, "client", String(err && err.message || err)));
    } finally {
      button.disabled = false;
      button.textContent = "Predict";
    }
  }

  function init() {
    const key = $("key");
    key.value = storedKey();
    key.addEventListener("input", () => storeKey(key.value.trim()));
    $("form").addEventListener("submit", submit);
    $("text").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) submit(event);
    });
    loadModel();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
