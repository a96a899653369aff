// SphereCorr demo page (issue #15): click points on the source, see where /v1/match puts them on the target.
// Plain JavaScript, no dependency, no build step. Every URL is relative, so the page works under any path prefix
// (deploy/nginx). Coordinates are original-image pixels, x = column, y = row, exactly as the API speaks them.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  // Distinct hues, each readable on photographs with the white halo the overlay CSS draws around text.
  const COLOURS = ["#d62728", "#1f5fbf", "#1e8a32", "#8e3fb5", "#c25400", "#7a4a2a", "#c2188f", "#0f7f8c"];
  const ROLES = ["source", "target"];

  const state = {
    images: { source: null, target: null }, // {file, url, width, height, sphereUrl}
    points: [],   // source pixels [x, y], in click order
    matches: [],  // the last /v1/match answer's matches (one per point sent)
    alpha: Number($("alpha-input").value),
    busy: false,  // a /v1/match request is in flight
    dirty: false, // points, images or alpha changed while it was: ask again when it returns
    cursor: null, // the keyboard cross on the source, in source pixels
    denseUrl: null,
  };

  // ---------------------------------------------------------------- server calls and their errors

  class ServerError extends Error {}

  /** fetch that turns every failure into a readable ServerError: the problem+json title, code and detail, the
   *  Retry-After of a 503, or why the server could not be reached. */
  async function call(url, init) {
    let r;
    try {
      r = await fetch(url, init);
    } catch (e) {
      throw new ServerError(`Could not reach the server (${url}): ${e.message}`);
    }
    if (r.ok) return r;
    let text = `${r.status} ${r.statusText}`.trim();
    const type = r.headers.get("Content-Type") || "";
    try {
      if (type.includes("json")) {
        const p = await r.json();
        text = `${p.title || r.statusText} (HTTP ${r.status}${p.code ? ", " + p.code : ""}): ${p.detail || ""}`;
      } else {
        // A proxy's own page (e.g. nginx's HTML 502): its text without tags.
        const body = (await r.text()).replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim();
        if (body) text += `: ${body.slice(0, 300)}`;
      }
    } catch (_) { /* keep the status line */ }
    if (r.status === 503) {
      const after = r.headers.get("Retry-After");
      text += after ? ` The server is busy or not ready: try again in ${after} s.` : " The server is busy or not ready: try again shortly.";
    }
    throw new ServerError(text);
  }

  function showError(e) {
    const el = $("error");
    el.textContent = e instanceof ServerError ? e.message : `Unexpected error: ${e && e.message ? e.message : e}`;
    el.hidden = false;
    el.scrollIntoView({ block: "nearest" }); // role=alert is read out; sighted users must see it too
  }

  function clearError() {
    $("error").hidden = true;
    $("error").textContent = "";
  }

  function status(text) { $("status").textContent = text; }

  // ---------------------------------------------------------------- model information and the demo banner

  async function loadInfo() {
    let info;
    try {
      info = await (await call("v1/info", { headers: { Accept: "application/json" } })).json();
    } catch (e) {
      showError(e);
      return;
    }
    if (info.demo === undefined) { // the model is still loading: ask again
      $("model").textContent = `Model: ${info.ready}…`;
      setTimeout(loadInfo, 2000);
      return;
    }
    const banner = $("demo-banner");
    if (info.demo) {
      banner.textContent = "Demo model: the weights are random, so the answers are meaningless. " +
        "Start the server with --backbone and --bundles to see real correspondences.";
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }
    const limit = info.limits && info.limits.max_body_bytes;
    $("model").textContent = `Model ${info.model_version} · backbone ${info.backbone ? info.backbone.name : "?"}` +
      (limit ? ` · request limit ${(limit / 1048576).toFixed(limit < 1048576 ? 3 : 0)} MiB` : "");
  }

  // ---------------------------------------------------------------- images

  async function setImage(role, file) {
    if (!file) return;
    const url = URL.createObjectURL(file);
    const probe = new Image();
    probe.src = url;
    try {
      await probe.decode();
    } catch (_) {
      URL.revokeObjectURL(url);
      showError(new ServerError(`The browser cannot display “${file.name}”: choose a JPEG or PNG image.`));
      return;
    }
    const old = state.images[role];
    if (old) {
      URL.revokeObjectURL(old.url);
      if (old.sphereUrl) URL.revokeObjectURL(old.sphereUrl);
    }
    state.images[role] = { file, url, width: probe.naturalWidth, height: probe.naturalHeight, sphereUrl: null };
    if (role === "source") { state.points = []; state.cursor = null; } // points belong to the image they were placed on
    state.matches = [];
    hideDense();
    const view = $(`${role}-view`), img = $(`${role}-img`);
    img.alt = `${role === "source" ? "Source" : "Target"} image: ${file.name} (${probe.naturalWidth}×${probe.naturalHeight})`;
    view.classList.remove("empty");
    // Small images are shown larger (clicking a 50-pixel image is no fun), never taller than 65% of the window.
    view.style.width = `min(100%, calc(65vh * ${probe.naturalWidth / probe.naturalHeight}))`;
    img.src = url;
    img.hidden = false;
    await img.decode().catch(() => {});
    // The element's own size: it shows the file's pixel grid as stored (image-orientation: none, like the server).
    if (img.naturalWidth > 0) Object.assign(state.images[role], { width: img.naturalWidth, height: img.naturalHeight });
    if ($("sphere-toggle").checked) await showSphereMaps();
    draw();
    if (state.images.source && state.images.target && state.points.length === 0) {
      status("Click on the source image to place a point.");
    }
    match();
  }

  /** The sphere maps (/v1/sphere-map, PNG coloured by the sphere coordinates, as in the paper's Figure 4) in place of
   *  the photographs while the toggle is on. They have the images' aspect, so the points stay where they were. */
  async function showSphereMaps() {
    const on = $("sphere-toggle").checked;
    for (const role of ROLES) {
      const im = state.images[role];
      if (!im) continue;
      if (on && !im.sphereUrl) {
        const body = new FormData();
        body.append("image", im.file, im.file.name || role);
        try {
          const r = await call("v1/sphere-map", { method: "POST", body, headers: { Accept: "image/png" } });
          const blob = await r.blob();
          if (state.images[role] !== im) continue; // replaced meanwhile
          im.sphereUrl = URL.createObjectURL(blob);
        } catch (e) {
          showError(e);
          continue;
        }
      }
      const img = $(`${role}-img`);
      img.src = on ? im.sphereUrl : im.url;
      await img.decode().catch(() => {});
    }
    draw();
  }

  // ---------------------------------------------------------------- matching

  /** Matches every point at the current alpha. One request at a time: changes made while one is in flight are
   *  sent as soon as it returns, and an answer for an outdated request is never drawn. */
  async function match() {
    if (state.busy) { state.dirty = true; return; }
    state.busy = true;
    $("pair").setAttribute("aria-busy", "true");
    try {
      do {
        state.dirty = false;
        const s = state.images.source, t = state.images.target;
        if (!s || !t || state.points.length === 0) {
          state.matches = [];
          break;
        }
        const points = state.points.map((p) => p.slice()), alpha = state.alpha;
        const body = new FormData();
        body.append("source", s.file, s.file.name || "source");
        body.append("target", t.file, t.file.name || "target");
        body.append("points", JSON.stringify(points));
        body.append("params", JSON.stringify({ alpha }));
        status(`Matching ${points.length} point${points.length === 1 ? "" : "s"} at α = ${alpha}…`);
        const t0 = performance.now();
        let answer;
        try {
          answer = await (await call("v1/match", { method: "POST", body, headers: { Accept: "application/json" } })).json();
        } catch (e) {
          state.matches = [];
          showError(e);
          status("The last match failed; see the message above.");
          break;
        }
        if (state.dirty) continue;
        clearError();
        state.matches = answer.matches;
        $("target-view").dataset.alpha = String(answer.alpha);
        const hidden = answer.matches.filter((m) => m.visible === false).length;
        status(`${answer.matches.length} match${answer.matches.length === 1 ? "" : "es"} at α = ${answer.alpha}` +
          (hidden ? `, ${hidden} judged not visible (hollow)` : "") + ` · ${Math.round(performance.now() - t0)} ms`);
      } while (state.dirty);
    } finally {
      state.busy = false;
      $("pair").setAttribute("aria-busy", "false");
      draw();
    }
  }

  async function showDense() {
    const s = state.images.source, t = state.images.target;
    if (!s || !t) {
      showError(new ServerError("Choose a source and a target image first."));
      return;
    }
    const body = new FormData();
    body.append("source", s.file, s.file.name || "source");
    body.append("target", t.file, t.file.name || "target");
    body.append("params", JSON.stringify({ alpha: state.alpha }));
    const button = $("dense-button");
    button.disabled = true;
    status(`Drawing the dense matches at α = ${state.alpha}…`);
    try {
      const blob = await (await call("v1/match", { method: "POST", body, headers: { Accept: "image/png" } })).blob();
      hideDense();
      state.denseUrl = URL.createObjectURL(blob);
      $("dense-img").src = state.denseUrl;
      $("dense-alpha").textContent = String(state.alpha);
      $("dense").hidden = false;
      clearError();
      status("Dense matches drawn below.");
      $("dense").scrollIntoView({ block: "nearest" });
    } catch (e) {
      showError(e);
    } finally {
      button.disabled = false;
    }
  }

  function hideDense() {
    if (state.denseUrl) URL.revokeObjectURL(state.denseUrl);
    state.denseUrl = null;
    $("dense").hidden = true;
  }

  // ---------------------------------------------------------------- drawing

  function svg(name, attrs, parent) {
    const el = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    if (parent) parent.appendChild(el);
    return el;
  }

  function fmt(v, digits) { return Number(v).toFixed(digits); }

  /** Screen size of one image pixel, for markers of a constant size on screen whatever the image size. */
  function pixelScale(role) {
    const im = state.images[role], rect = $(`${role}-img`).getBoundingClientRect();
    return im && rect.width > 0 ? im.width / rect.width : 1;
  }

  function resetOverlay(role) {
    const o = $(`${role}-overlay`), im = state.images[role];
    o.replaceChildren();
    if (im) {
      o.setAttribute("viewBox", `0 0 ${im.width} ${im.height}`);
      o.setAttribute("preserveAspectRatio", "none");
    }
    return o;
  }

  function marker(parent, x, y, n, colour, k, hollow, label) {
    const g = svg("g", {}, parent);
    svg("circle", { cx: x, cy: y, r: 7 * k, fill: hollow ? "none" : colour, stroke: hollow ? colour : "#ffffff",
      "stroke-width": (hollow ? 3 : 2) * k }, g);
    svg("text", { x: x + 9 * k, y: y - 8 * k, fill: colour, "font-size": 13 * k, "stroke-width": 3 * k }, g)
      .textContent = label ?? String(n);
    return g;
  }

  function draw() {
    const src = resetOverlay("source"), trg = resetOverlay("target");
    const links = $("links");
    links.replaceChildren();
    const ks = pixelScale("source"), kt = pixelScale("target");
    state.points.forEach((p, i) => {
      const g = marker(src, p[0], p[1], i + 1, COLOURS[i % COLOURS.length], ks, false);
      g.dataset.testid = "source-point";
      g.dataset.x = String(p[0]);
      g.dataset.y = String(p[1]);
    });
    if (state.cursor && document.activeElement === $("source-view")) {
      const [x, y] = state.cursor;
      svg("path", { d: `M${x - 10 * ks} ${y}H${x + 10 * ks}M${x} ${y - 10 * ks}V${y + 10 * ks}`, stroke: "#000000",
        "stroke-width": 3 * ks }, src);
      svg("path", { d: `M${x - 9 * ks} ${y}H${x + 9 * ks}M${x} ${y - 9 * ks}V${y + 9 * ks}`, stroke: "#ffffff",
        "stroke-width": 1.2 * ks }, src);
    }
    const rows = $("match-rows");
    rows.replaceChildren();
    const pairRect = $("pair").getBoundingClientRect();
    const srcRect = $("source-img").getBoundingClientRect(), trgRect = $("target-img").getBoundingClientRect();
    const si = state.images.source, ti = state.images.target;
    state.matches.forEach((m, i) => {
      const colour = COLOURS[i % COLOURS.length], hollow = m.visible === false;
      const [tx, ty] = m.target;
      const g = marker(trg, tx, ty, i + 1, colour, kt, hollow, `${i + 1} · ${fmt(m.score, 2)}`);
      // The test hooks (issue #15): the target pixel exactly as /v1/match returned it, and the score.
      g.dataset.testid = "match-marker";
      g.dataset.x = String(tx);
      g.dataset.y = String(ty);
      g.dataset.score = String(m.score);
      g.dataset.visible = String(m.visible !== false);
      if (si && ti && srcRect.width > 0 && trgRect.width > 0) {
        const x1 = srcRect.left - pairRect.left + m.source[0] * srcRect.width / si.width;
        const y1 = srcRect.top - pairRect.top + m.source[1] * srcRect.height / si.height;
        const x2 = trgRect.left - pairRect.left + tx * trgRect.width / ti.width;
        const y2 = trgRect.top - pairRect.top + ty * trgRect.height / ti.height;
        svg("line", { x1, y1, x2, y2, stroke: colour, "stroke-width": 2, "stroke-opacity": 0.85,
          "stroke-dasharray": hollow ? "6 4" : "none" }, links);
      }
      const tr = document.createElement("tr");
      const cells = [String(i + 1), `${fmt(m.source[0], 1)}, ${fmt(m.source[1], 1)}`, `${fmt(tx, 1)}, ${fmt(ty, 1)}`,
        fmt(m.score, 3), m.visible === undefined ? "–" : (m.visible ? "yes" : "no"),
        m.cycle_error_px === undefined ? "–" : fmt(m.cycle_error_px, 1)];
      for (const c of cells) tr.appendChild(document.createElement("td")).textContent = c;
      rows.appendChild(tr);
    });
    $("match-table").hidden = state.matches.length === 0;
  }

  // ---------------------------------------------------------------- points

  /** The source pixel under a click: the displayed image is scaled, the API speaks original pixels. */
  function clickToPixel(ev) {
    const im = state.images.source, rect = $("source-img").getBoundingClientRect();
    const x = (ev.clientX - rect.left) * im.width / rect.width, y = (ev.clientY - rect.top) * im.height / rect.height;
    return clampPoint([x, y]);
  }

  /** Inside the image ([0, width) × [0, height), as the API requires), to a tenth of a pixel. */
  function clampPoint([x, y]) {
    const im = state.images.source;
    const c = (v, n) => Math.min(Math.max(Math.round(v * 10) / 10, 0), n - 0.1);
    return [c(x, im.width), c(y, im.height)];
  }

  function addPoint(p) {
    state.points.push(p);
    status(`Point ${state.points.length} at (${fmt(p[0], 1)}, ${fmt(p[1], 1)}).`);
    draw();
    match();
  }

  function removeLastPoint() {
    if (state.points.length === 0) return;
    state.points.pop();
    state.matches = state.matches.slice(0, state.points.length);
    draw();
    match();
  }

  // ---------------------------------------------------------------- wiring

  for (const role of ROLES) {
    const input = $(`${role}-input`), view = $(`${role}-view`);
    input.addEventListener("change", () => setImage(role, input.files[0]));
    view.addEventListener("dragover", (ev) => { ev.preventDefault(); view.classList.add("dragover"); });
    view.addEventListener("dragleave", () => view.classList.remove("dragover"));
    view.addEventListener("drop", (ev) => {
      ev.preventDefault();
      view.classList.remove("dragover");
      if (ev.dataTransfer && ev.dataTransfer.files.length > 0) setImage(role, ev.dataTransfer.files[0]);
    });
  }
  $("source-view").addEventListener("click", (ev) => {
    if (!state.images.source) { $("source-input").click(); return; }
    state.cursor = clickToPixel(ev); // the keyboard cross continues from the last click
    addPoint(state.cursor.slice());
  });
  $("target-view").addEventListener("click", () => { if (!state.images.target) $("target-input").click(); });
  $("source-view").addEventListener("focus", () => {
    const im = state.images.source;
    if (im && !state.cursor) state.cursor = clampPoint([im.width / 2, im.height / 2]);
    draw();
  });
  $("source-view").addEventListener("blur", () => draw());
  $("source-view").addEventListener("keydown", (ev) => {
    const im = state.images.source;
    if (!im) {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); $("source-input").click(); }
      return;
    }
    const step = Math.max(1, Math.round(Math.max(im.width, im.height) / 50)) * (ev.shiftKey ? 5 : 1);
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (!state.cursor) state.cursor = clampPoint([im.width / 2, im.height / 2]);
    if (moves[ev.key]) {
      ev.preventDefault();
      state.cursor = clampPoint([state.cursor[0] + moves[ev.key][0], state.cursor[1] + moves[ev.key][1]]);
      draw();
    } else if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      addPoint(state.cursor.slice());
    } else if (ev.key === "Backspace" || ev.key === "Delete") {
      ev.preventDefault();
      removeLastPoint();
    }
  });
  $("alpha-input").addEventListener("change", () => {
    state.alpha = Number($("alpha-input").value);
    match();
    if (!$("dense").hidden) showDense();
  });
  $("sphere-toggle").addEventListener("change", () => showSphereMaps());
  $("dense-button").addEventListener("click", () => showDense());
  $("undo-button").addEventListener("click", () => removeLastPoint());
  $("clear-button").addEventListener("click", () => {
    state.points = [];
    state.matches = [];
    draw();
    status("Points cleared.");
  });
  $("controls").addEventListener("submit", (ev) => ev.preventDefault());
  new ResizeObserver(() => draw()).observe($("pair"));

  loadInfo();
})();
