// beaver preview: browse, filter, chart and correct a prepared dataset.
// Plain ES module, no dependencies; every write goes through the server's /api/edit/* endpoints.

const SHOT_LABELS = {
  close: "Close-up",
  mid: "Half body",
  far: "Full body",
  unknown: "No face",
};

const SHOT_HELP = {
  close: "the face fills much of the photo",
  mid: "head and upper body",
  far: "the whole body, from further away",
  unknown: "no face was found",
};

const state = {
  dataset: null,
  selected: null, // filename of the image shown in the panel
  busy: false,
  filters: { shots: new Set(), concepts: new Set(), search: "", showExcluded: true },
  cards: new Map(), // filename -> <li> of the current dataset version
};

// Caption draft bookkeeping: an unsaved edit survives re-renders caused by other edits.
let captionFor = null;
let captionBase = "";
let lastFocus = null;

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    // The server's CSP forbids inline style attributes; CSSOM properties are allowed.
    else if (key === "style") for (const [prop, v] of Object.entries(value)) node.style.setProperty(prop, v);
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const shotLabel = (shot) => SHOT_LABELS[shot] ?? shot;
const tagLabel = (concept) => concept.replaceAll("_", " ");
const pct = (x) => `${Math.round(x * 100)}%`;
const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

// A file name can be reused by another photo (a shot change frees it, the next one takes it),
// and thumbnails are cached by URL: tag each URL with the photo's identity.
function fnv1a(text) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(36);
}

function photoUrl(url, img) {
  if (!url || url.includes("?")) return url;
  return `${url}?v=${fnv1a(`${img.source ?? ""}|${img.width}x${img.height}`)}`;
}

// ---------- server ----------

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

function token() {
  // Read on every request, so a token changed in the page (tests do) is what is sent.
  return document.querySelector('meta[name="beaver-token"]')?.getAttribute("content") ?? "";
}

async function api(path, body) {
  const init = body === undefined
    ? { headers: { Accept: "application/json" }, cache: "no-store" }
    : {
        method: "POST",
        headers: {
          Accept: "application/json",
          "Content-Type": "application/json",
          "X-Beaver-Token": token(),
        },
        body: JSON.stringify(body),
      };
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError("the preview server can't be reached. Is `beaver preview` still running?", 0);
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const why = data && typeof data.error === "string" ? data.error : `${response.status} ${response.statusText}`;
    throw new ApiError(why, response.status);
  }
  return data;
}

// ---------- error banner ----------

function showError(message) {
  $("error-text").textContent = message;
  document.querySelector('[data-testid="error"]').hidden = false;
}

function hideError() {
  document.querySelector('[data-testid="error"]').hidden = true;
}

// ---------- dataset ----------

const SHOT_ORDER = ["close", "mid", "far", "unknown"];

function byShot(a, b) {
  const rank = (img) => (img.excluded ? 10 : 0) + (SHOT_ORDER.indexOf(img.shot_type) + 5) % 5;
  return rank(a) - rank(b) || a.name.localeCompare(b.name, undefined, { numeric: true });
}

function images() {
  return state.dataset ? state.dataset.images : [];
}

function findImage(filename) {
  return images().find((img) => img.filename === filename) ?? null;
}

let generation = 0; // bumped by every applyDataset: a slower, older answer must not win

function applyDataset(dataset) {
  generation += 1;
  dataset.images = [...dataset.images].sort(byShot);
  state.dataset = dataset;
  const concepts = new Set(dataset.concepts);
  for (const c of [...state.filters.concepts]) if (!concepts.has(c)) state.filters.concepts.delete(c);
  const shots = new Set(dataset.shot_types);
  for (const s of [...state.filters.shots]) if (!shots.has(s)) state.filters.shots.delete(s);
  state.cards = new Map(dataset.images.map((img) => [img.filename, buildCard(img)]));
  renderHeader();
  renderWarnings();
  renderShotChart();
  renderConceptChart();
  renderFilterChips();
  renderGrid();
  if (state.selected !== null) {
    if (findImage(state.selected)) renderPanel();
    else closePanel(false);
  }
}

async function loadDataset() {
  try {
    applyDataset(await api("/api/dataset"));
  } catch (err) {
    $("dataset-title").textContent = "Couldn't load the dataset";
    showError(`Couldn't load the dataset: ${err.message}`);
  }
}

// Another tab (or `beaver` on the command line) may have changed the dataset: refresh on return.
let refreshing = false;
async function refreshIfChanged() {
  if (refreshing || state.busy || !state.dataset) return;
  refreshing = true;
  const started = generation;
  try {
    const fresh = await api("/api/dataset");
    if (started === generation && !state.busy && fresh.version !== state.dataset.version) {
      applyDataset(fresh);
    }
  } catch {
    // The next edit reports any problem; a failed background refresh stays quiet.
  } finally {
    refreshing = false;
  }
}

// ---------- header, warnings, charts ----------

function renderHeader() {
  const ds = state.dataset;
  $("dataset-title").textContent = `${ds.name}: training photos`;
  if (!document.title || document.title.includes("{{")) document.title = `${ds.name} — beaver preview`;
  const excluded = ds.images.filter((img) => img.excluded).length;
  const emphasised = ds.images.filter((img) => img.emphasis && !img.excluded).length;
  const summary = $("dataset-summary");
  summary.replaceChildren(
    el("strong", { text: plural(ds.total_images, "photo") }),
    " used for training · trigger word ",
    el("span", { class: "trigger", text: ds.trigger }),
    excluded ? ` · ${excluded} excluded` : "",
    emphasised ? ` · ${emphasised} emphasised` : "",
    " · ",
    el("span", { class: "path", title: "Dataset folder", text: ds.path }),
  );
}

function shotVerdict(shot) {
  const ds = state.dataset;
  const band = (ds.recommended_range ?? {})[shot];
  if (!band || ds.total_images <= 0) return null;
  const value = ((ds.shot_distribution ?? {})[shot] ?? 0) / ds.total_images;
  if (value < band[0] - 1e-9) return { cls: "low", text: "Too few" };
  if (value > band[1] + 1e-9) return { cls: "high", text: "Too many" };
  return { cls: "ok", text: "Good" };
}

function renderWarnings() {
  const warnings = state.dataset.warnings ?? [];
  $("warnings-list").replaceChildren(...warnings.map((w) => el("li", { "data-testid": "warning", text: w })));
  const off = ["close", "mid", "far"]
    .map((shot) => [shot, shotVerdict(shot)])
    .filter(([, verdict]) => verdict && verdict.cls !== "ok")
    .map(([shot, verdict]) => `${shotLabel(shot).toLowerCase()} (${verdict.text.toLowerCase()})`);
  const ok = $("warnings-ok");
  ok.textContent = off.length
    ? `No problems found. For a better balance, adjust: ${off.join(", ")}; see the chart below.`
    : "No problems found: the mix of shots is within the recommended ranges.";
  ok.hidden = warnings.length > 0;
  ok.classList.toggle("advice", off.length > 0);
  const box = document.querySelector('[data-testid="warnings"]');
  box.classList.toggle("has-none", warnings.length === 0 && off.length === 0);
}

function axisMax(values) {
  const top = Math.max(0.05, ...values);
  return Math.min(1, Math.ceil((top * 1.12) * 10) / 10);
}

function renderShotChart() {
  const ds = state.dataset;
  const total = ds.total_images;
  const dist = ds.shot_distribution ?? {};
  const mix = ds.recommended_mix ?? {};
  const range = ds.recommended_range ?? {};
  const shots = ["close", "mid", "far"];
  for (const s of Object.keys(dist)) if (!shots.includes(s) && dist[s] > 0) shots.push(s);
  const share = (s) => (total > 0 ? (dist[s] ?? 0) / total : 0);
  const scale = axisMax([
    ...shots.map(share),
    ...shots.map((s) => (range[s] ? range[s][1] : 0)),
    ...shots.map((s) => mix[s] ?? 0),
  ]);
  const at = (x) => `${Math.min(100, (x / scale) * 100)}%`;

  const rows = shots.map((shot) => {
    const count = dist[shot] ?? 0;
    const value = share(shot);
    const band = range[shot];
    const ideal = mix[shot];
    const verdict = shotVerdict(shot);
    const described = [
      `${shotLabel(shot)}: ${plural(count, "photo")}, ${pct(value)} of the training photos`,
      band ? `recommended ${pct(band[0])} to ${pct(band[1])}` : null,
      verdict ? verdict.text.toLowerCase() : null,
    ].filter(Boolean).join("; ");
    return el(
      "div",
      { class: `bar-row shot-${shot}`, "data-testid": "chart-shot", "data-shot": shot, "data-count": count },
      el("span", { class: "bar-label", text: shotLabel(shot) }),
      el(
        "div",
        { class: "bar-track", role: "img", "aria-label": described },
        band ? el("div", { class: "bar-band", style: { left: at(band[0]), width: `calc(${at(band[1])} - ${at(band[0])})` } }) : null,
        ideal !== undefined ? el("div", { class: "bar-tick", style: { left: at(ideal) } }) : null,
        el("div", { class: "bar-fill", style: { width: at(value) } }),
      ),
      el(
        "div",
        { class: "bar-note" },
        el("span", { class: "value", text: `${plural(count, "photo")} · ${pct(value)}` }),
        band ? el("span", { text: `aim for ${pct(band[0])}–${pct(band[1])}` }) : null,
        verdict ? el("span", { class: `verdict ${verdict.cls}`, text: verdict.text }) : null,
      ),
    );
  });
  const bars = $("chart-shots-bars");
  if (total === 0) bars.replaceChildren(el("p", { class: "chart-empty", text: "No photos are used for training." }));
  else bars.replaceChildren(...rows);
}

function renderConceptChart() {
  const top = state.dataset.top_concepts ?? [];
  const bars = $("chart-concepts-bars");
  if (top.length === 0) {
    bars.replaceChildren(el("p", { class: "chart-empty", text: "No tags were found in the captions." }));
    return;
  }
  const scale = axisMax(top.map((t) => t.frequency));
  bars.replaceChildren(
    ...top.map((t) => {
      const active = state.filters.concepts.has(t.concept);
      return el(
        "div",
        { class: "bar-row", "data-testid": "chart-concept", "data-concept": t.concept, "data-count": t.count },
        el("button", {
          type: "button",
          class: "bar-label link-button",
          title: active ? "Stop filtering by this tag" : "Show only photos with this tag",
          "aria-pressed": active ? "true" : "false",
          text: tagLabel(t.concept),
          onclick: () => toggleConcept(t.concept),
        }),
        el(
          "div",
          { class: "bar-track", role: "img", "aria-label": `${tagLabel(t.concept)}: ${plural(t.count, "photo")}, ${pct(t.frequency)}` },
          el("div", { class: "bar-fill", style: { width: `${Math.min(100, (t.frequency / scale) * 100)}%` } }),
        ),
        el("div", { class: "bar-note" }, el("span", { class: "value", text: `${plural(t.count, "photo")} · ${pct(t.frequency)}` })),
      );
    }),
  );
}

// ---------- filters ----------

function countable(img) {
  return state.filters.showExcluded || !img.excluded;
}

function renderFilterChips() {
  const ds = state.dataset;
  const shotCounts = {};
  const conceptCounts = {};
  for (const img of ds.images) {
    if (!countable(img)) continue;
    shotCounts[img.shot_type] = (shotCounts[img.shot_type] ?? 0) + 1;
    for (const c of img.concepts) conceptCounts[c] = (conceptCounts[c] ?? 0) + 1;
  }
  $("filter-shots").replaceChildren(
    ...ds.shot_types.map((shot) =>
      el(
        "label",
        { class: "chip", title: SHOT_HELP[shot] ?? "" },
        el("input", {
          type: "checkbox",
          value: shot,
          "data-testid": `filter-shot-${shot}`,
          checked: state.filters.shots.has(shot),
          onchange: (event) => {
            if (event.target.checked) state.filters.shots.add(shot);
            else state.filters.shots.delete(shot);
            renderGrid();
          },
        }),
        el("span", { class: `dot shot-${shot}` }),
        shotLabel(shot),
        el("span", { class: "count", text: shotCounts[shot] ?? 0 }),
      ),
    ),
  );
  const concepts = [...ds.concepts].sort(
    (a, b) => (conceptCounts[b] ?? 0) - (conceptCounts[a] ?? 0) || a.localeCompare(b),
  );
  const chips = concepts.map((concept) =>
    el(
      "label",
      { class: "chip" },
      el("input", {
        type: "checkbox",
        value: concept,
        "data-testid": `filter-concept-${concept}`,
        checked: state.filters.concepts.has(concept),
        onchange: (event) => {
          if (event.target.checked) state.filters.concepts.add(concept);
          else state.filters.concepts.delete(concept);
          renderConceptChart();
          renderGrid();
        },
      }),
      tagLabel(concept),
      el("span", { class: "count", text: conceptCounts[concept] ?? 0 }),
    ),
  );
  $("filter-concepts").replaceChildren(
    ...(chips.length ? chips : [el("p", { class: "hint", text: "No tags yet." })]),
  );
}

function toggleConcept(concept) {
  if (state.filters.concepts.has(concept)) state.filters.concepts.delete(concept);
  else state.filters.concepts.add(concept);
  renderFilterChips();
  renderConceptChart();
  renderGrid();
}

function clearFilters() {
  state.filters.shots.clear();
  state.filters.concepts.clear();
  state.filters.search = "";
  state.filters.showExcluded = true;
  $("search").value = "";
  $("show-excluded").checked = true;
  renderFilterChips();
  renderConceptChart();
  renderGrid();
}

function matches(img) {
  const f = state.filters;
  if (!f.showExcluded && img.excluded) return false;
  if (f.shots.size > 0 && !f.shots.has(img.shot_type)) return false;
  for (const c of f.concepts) if (!img.concepts.includes(c)) return false;
  if (f.search && !img.caption.toLowerCase().includes(f.search)) return false;
  return true;
}

function shownImages() {
  return images().filter(matches);
}

// ---------- grid ----------

function buildCard(img) {
  const badges = el(
    "span",
    { class: "badges" },
    el("span", { class: `badge shot-${img.shot_type}`, "data-testid": "card-shot", text: shotLabel(img.shot_type) }),
    img.emphasis ? el("span", { class: "badge emphasis", "data-testid": "card-emphasis", text: "★ Emphasis" }) : null,
    img.excluded ? el("span", { class: "badge excluded", "data-testid": "card-excluded", text: "Excluded" }) : null,
  );
  const button = el(
    "button",
    {
      type: "button",
      class: [
        "photo-card",
        img.excluded ? "is-excluded" : "",
        img.emphasis ? "is-emphasis" : "",
        img.filename === state.selected ? "selected" : "",
      ].filter(Boolean).join(" "),
      "data-testid": "card",
      "data-filename": img.filename,
      "data-shot": img.shot_type,
      "data-excluded": img.excluded ? "true" : "false",
      "data-emphasis": img.emphasis ? "true" : "false",
      "aria-label": [
        img.name,
        shotLabel(img.shot_type),
        img.excluded ? "excluded" : null,
        img.emphasis ? "emphasised" : null,
        img.caption,
      ].filter(Boolean).join(", "),
      onclick: () => openPanel(img.filename),
    },
    el(
      "span",
      { class: "thumb" },
      el("img", {
        src: photoUrl(img.thumb, img),
        loading: "lazy",
        decoding: "async",
        alt: img.caption ? `Photo: ${img.caption}` : `Photo ${img.name}`,
      }),
      badges,
    ),
    el(
      "span",
      { class: "card-text" },
      el("span", { class: "card-name", text: img.name }),
      el("span", { class: "card-caption", text: img.caption || "(no caption)" }),
    ),
  );
  return el("li", {}, button);
}

function renderGrid() {
  const shown = shownImages();
  $("grid").replaceChildren(...shown.map((img) => state.cards.get(img.filename)));
  const all = images();
  const excluded = all.filter((img) => img.excluded).length;
  const count = $("shown-count");
  count.dataset.shown = String(shown.length);
  count.dataset.total = String(all.length);
  count.replaceChildren(
    "Showing ",
    el("strong", { text: shown.length }),
    ` of ${plural(all.length, "photo")}`,
    excluded && !state.filters.showExcluded ? ` (${excluded} excluded hidden)` : "",
  );
  $("grid-empty").hidden = shown.length > 0 || all.length === 0;
  updatePanelNav();
}

function markSelectedCard() {
  for (const [filename, li] of state.cards) {
    li.firstElementChild.classList.toggle("selected", filename === state.selected);
  }
}

// ---------- panel ----------

function captionDirty() {
  return captionFor !== null && captionFor === state.selected && captionDraft() !== captionBase.trim();
}

// An unsaved caption is not dropped silently when the user moves on.
function mayLeaveCaption() {
  return !captionDirty() || window.confirm("Your caption changes are not saved. Discard them?");
}

function openPanel(filename) {
  if (filename !== state.selected && !mayLeaveCaption()) return;
  const wasOpen = !$("panel").hidden;
  if (!wasOpen) lastFocus = document.activeElement;
  state.selected = filename;
  renderPanel();
  $("panel").hidden = false;
  document.body.classList.add("panel-open");
  markSelectedCard();
  if (!wasOpen) $("panel-close").focus();
  setStatus("");
}

function closePanel(restoreFocus = true) {
  if (restoreFocus && !mayLeaveCaption()) return;
  const filename = state.selected;
  state.selected = null;
  captionFor = null;
  $("panel").hidden = true;
  document.body.classList.remove("panel-open");
  markSelectedCard();
  if (restoreFocus) {
    const card = filename ? state.cards.get(filename)?.firstElementChild : null;
    const target = card && card.isConnected ? card : lastFocus;
    if (target && target.isConnected) target.focus();
  }
}

function setStatus(text, kind = "") {
  const status = $("panel-status");
  status.textContent = text;
  status.className = `status ${kind}`;
  status.dataset.state = kind;
}

function renderPanel() {
  const img = findImage(state.selected);
  if (!img) return;
  $("panel-title").textContent = img.name;

  const photo = $("panel-image");
  const src = photoUrl(img.image, img);
  if (photo.getAttribute("src") !== src) photo.src = src;
  photo.alt = img.caption ? `Photo: ${img.caption}` : `Photo ${img.name}`;
  // The frame takes the photo's shape, so the face box (in % of the photo) lands on the face.
  const frame = $("panel-frame");
  if (img.width > 0 && img.height > 0) {
    frame.style.setProperty("aspect-ratio", `${img.width} / ${img.height}`);
    frame.style.setProperty("width", `min(100%, calc(45vh * ${img.width / img.height}))`);
  } else {
    frame.style.removeProperty("aspect-ratio");
    frame.style.removeProperty("width");
  }
  const box = $("panel-face-box");
  const note = $("panel-face-note");
  if (img.face_bbox && img.width > 0 && img.height > 0) {
    const [x1, y1, x2, y2] = img.face_bbox;
    const clamp = (v) => Math.max(0, Math.min(100, v));
    box.style.left = `${clamp((x1 / img.width) * 100)}%`;
    box.style.top = `${clamp((y1 / img.height) * 100)}%`;
    box.style.width = `${clamp(((x2 - x1) / img.width) * 100)}%`;
    box.style.height = `${clamp(((y2 - y1) / img.height) * 100)}%`;
    box.hidden = false;
    note.textContent = "The box marks the face used to decide the shot type.";
  } else {
    box.hidden = true;
    note.textContent = "No face was found in this photo.";
  }

  const select = $("panel-shot-select");
  select.replaceChildren(
    ...state.dataset.shot_types.map((shot) =>
      el("option", { value: shot, text: SHOT_HELP[shot] ? `${shotLabel(shot)} — ${SHOT_HELP[shot]}` : shotLabel(shot) }),
    ),
  );
  select.value = img.shot_type;

  const caption = $("panel-caption");
  if (captionFor !== img.filename || caption.value === captionBase) caption.value = img.caption;
  captionFor = img.filename;
  captionBase = img.caption;
  updateCaptionButtons();

  const concepts = $("panel-concepts");
  concepts.replaceChildren(
    ...(img.concepts.length
      ? img.concepts.map((c) => el("li", { text: tagLabel(c) }))
      : [el("li", { class: "none", text: "None found" })]),
  );

  const emphasis = $("panel-emphasis");
  emphasis.setAttribute("aria-pressed", img.emphasis ? "true" : "false");
  emphasis.textContent = img.emphasis ? "★ Emphasised" : "☆ Emphasise";
  emphasis.title = img.emphasis ? "Stop repeating this photo more often" : "Repeat this photo more often in training";
  const exclude = $("panel-exclude");
  exclude.textContent = img.excluded ? "Include in training again" : "Exclude from training";
  exclude.classList.toggle("danger", !img.excluded);
  exclude.classList.toggle("primary", img.excluded);
  $("panel-actions-hint").textContent = img.excluded
    ? "This photo is left out of training. It stays in the dataset's excluded folder."
    : "Emphasised photos are shown to the model more often. Excluded photos are left out but kept.";

  const rows = [
    ["Shot type", `${shotLabel(img.shot_type)}${img.excluded ? " (excluded)" : ""}`],
    ["Shot certainty", img.shot_confidence > 0 ? pct(img.shot_confidence) : "not measured"],
    ["Face size", img.face_ratio === null || img.face_ratio === undefined ? "no face found" : `${pct(img.face_ratio)} of the photo's height`],
    ["Pose", img.pose ? tagLabel(img.pose) : "—"],
    ["Setting", img.setting ? tagLabel(img.setting) : "—"],
    ["Size", img.width && img.height ? `${img.width} × ${img.height} pixels` : "—"],
    ["File", img.filename, "mono"],
    ["Original photo", img.source || "—", "mono"],
  ];
  $("panel-details").replaceChildren(
    ...rows.flatMap(([term, value, cls]) => [
      el("dt", { text: term }),
      el("dd", { class: cls ?? null, "data-field": term.toLowerCase().replaceAll(" ", "-"), text: value }),
    ]),
  );
  updatePanelNav();
  setBusy(state.busy);
}

function captionDraft() {
  return $("panel-caption").value.replace(/\s*[\r\n]+\s*/g, " ").trim();
}

function updateCaptionButtons() {
  const changed = captionDraft() !== captionBase.trim();
  $("panel-save-caption").disabled = state.busy || !changed;
  $("panel-reset-caption").disabled = state.busy || $("panel-caption").value === captionBase;
}

function navList() {
  const shown = shownImages();
  return shown.some((img) => img.filename === state.selected) ? shown : images();
}

function updatePanelNav() {
  if (state.selected === null) return;
  const list = navList();
  const i = list.findIndex((img) => img.filename === state.selected);
  $("panel-prev").disabled = i <= 0;
  $("panel-next").disabled = i < 0 || i >= list.length - 1;
}

function step(delta) {
  const list = navList();
  const i = list.findIndex((img) => img.filename === state.selected);
  const next = list[i + delta];
  if (i >= 0 && next) {
    openPanel(next.filename);
    state.cards.get(next.filename)?.firstElementChild.scrollIntoView({ block: "nearest" });
  }
}

function setBusy(busy) {
  state.busy = busy;
  for (const id of ["panel-shot-select", "panel-emphasis", "panel-exclude"]) $(id).disabled = busy;
  $("panel").setAttribute("aria-busy", busy ? "true" : "false");
  updateCaptionButtons();
}

// ---------- edits ----------

async function edit(kind, payload, what) {
  if (state.busy || state.selected === null) return false;
  const filename = state.selected;
  setBusy(true);
  setStatus("Saving…", "saving");
  try {
    const result = await api(`/api/edit/${kind}`, { filename, ...payload });
    // The file may have moved (shot change, exclude): follow it.
    const moved = result.image.filename;
    if (state.selected === filename) {
      state.selected = moved;
      if (captionFor === filename) captionFor = moved;
    }
    state.busy = false;
    applyDataset(result.dataset);
    markSelectedCard();
    hideError();
    setStatus(`Saved: ${what}.`, "saved");
    return true;
  } catch (err) {
    state.busy = false;
    showError(`Couldn't save (${what}): ${err.message}`);
    setStatus("Not saved. See the message at the top.", "failed");
    if (err.status === 409 || err.status === 404) await refreshAfterConflict();
    else if (state.selected !== null) renderPanel();
    return false;
  } finally {
    setBusy(false);
  }
}

async function refreshAfterConflict() {
  try {
    applyDataset(await api("/api/dataset"));
  } catch {
    if (state.selected !== null) renderPanel();
  }
}

async function saveCaption() {
  const caption = captionDraft();
  if (caption === captionBase.trim()) return;
  if (!caption) {
    showError("A caption can't be empty: describe the photo in a few words.");
    return;
  }
  const saved = await edit("caption", { caption }, "caption");
  // Show the caption as saved (one line), unless the user kept typing meanwhile.
  const img = findImage(state.selected);
  if (saved && img && captionDraft() === caption) {
    $("panel-caption").value = img.caption;
    captionBase = img.caption;
    updateCaptionButtons();
  }
}

// ---------- wiring ----------

function wire() {
  $("error-close").addEventListener("click", hideError);
  $("search").addEventListener("input", (event) => {
    state.filters.search = event.target.value.trim().toLowerCase();
    renderGrid();
  });
  $("show-excluded").addEventListener("change", (event) => {
    state.filters.showExcluded = event.target.checked;
    renderFilterChips();
    renderGrid();
  });
  $("clear-filters").addEventListener("click", clearFilters);
  $("clear-filters-2").addEventListener("click", clearFilters);

  $("panel-close").addEventListener("click", () => closePanel());
  $("panel-prev").addEventListener("click", () => step(-1));
  $("panel-next").addEventListener("click", () => step(1));
  $("panel-shot-select").addEventListener("change", (event) => {
    const shot = event.target.value;
    edit("shot", { shot_type: shot }, `shot type changed to ${shotLabel(shot)}`);
  });
  $("panel-caption").addEventListener("input", updateCaptionButtons);
  $("panel-caption").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      saveCaption();
    }
  });
  $("panel-save-caption").addEventListener("click", saveCaption);
  $("panel-reset-caption").addEventListener("click", () => {
    $("panel-caption").value = captionBase;
    updateCaptionButtons();
  });
  $("panel-emphasis").addEventListener("click", () => {
    const img = findImage(state.selected);
    if (img) edit("emphasis", { emphasis: !img.emphasis }, img.emphasis ? "emphasis removed" : "emphasised");
  });
  $("panel-exclude").addEventListener("click", () => {
    const img = findImage(state.selected);
    if (img) edit("exclude", { excluded: !img.excluded }, img.excluded ? "included again" : "excluded");
  });

  document.addEventListener("keydown", (event) => {
    if ($("panel").hidden) return;
    if (event.key === "Escape") {
      event.preventDefault();
      closePanel();
      return;
    }
    const typing = event.target instanceof HTMLElement && event.target.closest("input, textarea, select");
    if (typing || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === "ArrowLeft") step(-1);
    else if (event.key === "ArrowRight") step(1);
  });

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refreshIfChanged();
  });
  window.addEventListener("focus", refreshIfChanged);
}

wire();
loadDataset();
