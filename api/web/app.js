// The DeepfakeStream page: API key, upload with progress, a live jobs list, a job's results
// (verdict in plain words with its probability and band, score over time, suspicious faces with
// Grad-CAM heatmaps, segments, input statistics, report download, cancel and delete) and batches
// with their counts, items and exports. Plain ES module, no build step; every call goes through
// the public REST API with the key the person entered. The jobs list filters through the API's
// own filters (kept in the address, so a filtered view can be reloaded or shared), and a batch
// can be started from local files.

const KEY_STORAGE = "deepfakestream.apiKey";
const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
const JOBS_POLL_MS = 2000;
const JOB_POLL_MS = 1000;
const BATCH_POLL_MS = 2000;
const JOBS_PAGE = 25;
// GET /v1/jobs's filters: several values each (comma-separated), then one value each.
const FILTER_CHOICES = ["verdict", "status", "media_type"];
const FILTER_FIELDS = ["created_from", "created_to", "external_id", "batch_id"];
const FILTER_NAMES = {
  verdict: "result",
  status: "status",
  media_type: "media",
  created_from: "submitted from",
  created_to: "submitted to",
  external_id: "external id",
  batch_id: "batch",
};
// What a batch from the page sends: the containers and image formats the service reads by
// default (as the batch command's folder mode); the service still checks each file's bytes.
const VIDEO_SUFFIXES = new Set([".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"]);
const IMAGE_SUFFIXES = new Set([".jpg", ".jpeg", ".png", ".webp", ".gif"]);
const IMAGE_TYPES = new Set(["image/jpeg", "image/png", "image/webp", "image/gif"]);
const PARALLEL_UPLOADS = 3;
const SVG_NS = "http://www.w3.org/2000/svg";

// The API sends verdict_label; these are the same words, for answers without it.
const VERDICT_WORDS = {
  fake: "Signs of manipulation",
  real: "No signs of manipulation found by this model",
  inconclusive: "Inconclusive",
  no_face: "No face found",
};
const STATUS_WORDS = {
  queued: "Queued",
  processing: "Analysing…",
  succeeded: "Done",
  failed: "Analysis failed",
  canceled: "Canceled",
};
// Without a band from the model, a score this close to the threshold is called out as uncertain.
const NEAR_THRESHOLD = 0.05;

const state = {
  key: sessionStorage.getItem(KEY_STORAGE) || "",
  timer: null,
  route: null,
  jobsFilter: null, // the filters the list below was fetched with (their query string)
  jobsCursor: undefined, // the next page after the ones shown; null when there is none
  olderJobs: [],
  picked: { media: [], skipped: [] }, // the files chosen for a new batch
  uploading: false,
  pickedFrame: null,
  notSent: {}, // batch id → the files a batch from this page could not include, and why
  blobUrls: [],
  shownJob: null, // the last answer for the job on screen (the time estimate needs its start)
  events: null, // the open EventSource of the job on screen
  eventsFailed: false, // a stream could not be opened: poll instead
};

const $ = (id) => document.getElementById(id);

// --- API -------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function errorFrom(response) {
  let code = `http_${response.status}`;
  let message = response.statusText || "request failed";
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch (_) {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, code, message);
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}), Authorization: `Bearer ${state.key}` };
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    throw await errorFrom(response);
  }
  return response;
}

async function apiJson(path) {
  return (await api(path)).json();
}

async function postJson(path, body, headers = {}) {
  const options = { method: "POST", headers: { ...headers, "Content-Type": "application/json" }, body: JSON.stringify(body) };
  return (await api(path, options)).json();
}

async function allPages(path) {
  const items = [];
  let cursor = null;
  do {
    const separator = path.includes("?") ? "&" : "?";
    const url = cursor ? `${path}${separator}cursor=${encodeURIComponent(cursor)}` : path;
    const page = await apiJson(url);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

async function imageUrl(path) {
  // <img src> cannot carry the Authorization header: fetch the image, show it from a blob URL.
  const blob = await (await api(path)).blob();
  const url = URL.createObjectURL(blob);
  state.blobUrls.push(url);
  return url;
}

// --- small helpers -----------------------------------------------------------------------------

function showError(error) {
  const box = $("error");
  if (!error) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.hidden = false;
  box.textContent = errorText(error);
}

function errorText(error) {
  return error instanceof ApiError ? `${error.message} (${error.code})` : String(error.message || error);
}

// The outcome of something the person did: it stays on screen until dismissed (or replaced by
// the next outcome), whatever the page refreshes in the meantime.
function showNotice(text, kind = "bad") {
  $("notice-text").textContent = text;
  $("notice").className = `notice ${kind}`;
  $("notice").dataset.kind = kind;
  $("notice").hidden = false;
}

function dismissNotice() {
  $("notice").hidden = true;
  $("notice-text").textContent = "";
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    // Through the CSSOM: the page's Content-Security-Policy refuses style attributes.
    else if (name === "style") node.style.cssText = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function known(value) {
  return value !== null && value !== undefined;
}

function fmt(value, digits = 3) {
  return known(value) ? Number(value).toFixed(digits) : "—";
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

function shortId(id) {
  return id.slice(0, 8);
}

function verdictWords(verdict, label) {
  return label || VERDICT_WORDS[verdict] || (verdict ? verdict.replace("_", " ") : "");
}

// Rows of a list, each cell labelled with its column's name for the phone layout's cards.
function fillRows(tbodyId, rows) {
  const body = $(tbodyId);
  const names = [...body.closest("table").tHead.rows[0].cells].map((cell) => cell.textContent.trim());
  for (const row of rows) {
    [...row.cells].forEach((cell, index) => {
      cell.dataset.label = names[index] || "";
    });
  }
  body.replaceChildren(...rows);
}

function badge(text, kind) {
  return el("span", { class: `badge ${kind || text}` }, text);
}

function verdictBadge(verdict, label) {
  return el("span", { class: `badge ${verdict}`, dataset: { verdict } }, verdictWords(verdict, label));
}

// What a list row shows in its result column: the verdict, or why there is none.
function resultCell({ status, verdict, label, errorCode, errorMessage, partial }) {
  if (verdict) return verdictBadge(verdict, label);
  if (status === "failed") {
    return el("span", { class: "failure", title: errorMessage || "" },
      el("span", { class: "error-code" }, errorCode || "failed"),
      errorMessage ? el("span", { class: "muted small" }, ` ${errorMessage}`) : null);
  }
  if (status === "canceled") return el("span", { class: "muted" }, partial ? "canceled, partly scored" : "canceled");
  return el("span", { class: "muted" }, "pending");
}

// Threshold and inconclusive band of the model that scored the job, wherever the API put them.
function decisionOf(job) {
  const model = job.model || {};
  const threshold = known(model.threshold) ? model.threshold : job.threshold;
  const band = model.inconclusive_band || job.inconclusive_band || null;
  const validBand = Array.isArray(band) && band.length === 2 && band.every((v) => known(v)) ? band : null;
  return { threshold: known(threshold) ? Number(threshold) : null, band: validBand };
}

function aggregationName(model) {
  const aggregation = model && model.aggregation;
  if (!aggregation) return null;
  if (typeof aggregation === "string") return aggregation;
  return aggregation.name || aggregation.method || aggregation.strategy || null;
}

async function download(path, fallbackName) {
  const response = await api(path);
  const disposition = response.headers.get("Content-Disposition") || "";
  const named = disposition.match(/filename="?([^";]+)"?/i);
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", { href: url, download: named ? named[1] : fallbackName, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function stopPolling() {
  if (state.timer !== null) {
    clearTimeout(state.timer);
    state.timer = null;
  }
  if (state.events !== null) {
    state.events.close();
    state.events = null;
  }
}

function poll(fn, ms) {
  stopPolling();
  const route = state.route;
  state.timer = setTimeout(async () => {
    if (state.route !== route) return;
    await fn();
  }, ms);
}

function showView(name) {
  for (const view of document.querySelectorAll(".view")) {
    view.hidden = view.id !== `view-${name}`;
  }
}

function releaseBlobs() {
  for (const url of state.blobUrls) URL.revokeObjectURL(url);
  state.blobUrls = [];
}

// --- key ---------------------------------------------------------------------------------------

function renderKeyState() {
  $("api-key").value = state.key ? "" : $("api-key").value;
  $("api-key").placeholder = state.key ? `${state.key.slice(0, 12)}… in use` : "dfs_…";
  $("api-key").required = !state.key;
  $("forget-key").hidden = !state.key;
  $("key-status").textContent = state.key ? "key set" : "no key";
}

async function useKey(key) {
  state.key = key.trim();
  sessionStorage.setItem(KEY_STORAGE, state.key);
  try {
    await apiJson("/v1/jobs?limit=1");
    showError(null);
  } catch (error) {
    state.key = "";
    sessionStorage.removeItem(KEY_STORAGE);
    showError(error);
  }
  renderKeyState();
  route();
}

// --- upload ------------------------------------------------------------------------------------

function upload(file, externalId) {
  const form = new FormData();
  form.append("file", file, file.name);
  if (externalId) form.append("external_id", externalId);
  const request = new XMLHttpRequest();
  request.open("POST", "/v1/jobs");
  request.setRequestHeader("Authorization", `Bearer ${state.key}`);
  $("upload-status").hidden = false;
  $("upload-button").disabled = true;
  $("upload-message").textContent = `sending ${file.name}`;
  const setProgress = (fraction) => {
    const percent = Math.round(fraction * 100);
    $("upload-progress").value = percent;
    $("upload-percent").textContent = `${percent}%`;
  };
  setProgress(0);
  request.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable) setProgress(event.loaded / event.total);
  });
  request.addEventListener("load", () => {
    $("upload-button").disabled = false;
    let body = null;
    try {
      body = JSON.parse(request.responseText);
    } catch (_) {
      body = null;
    }
    if (request.status === 202 || request.status === 200) {
      dismissNotice();
      setProgress(1);
      $("upload-message").textContent = "uploaded; analysis queued";
      $("upload-form").reset();
      location.hash = `#/jobs/${body.id}`;
    } else {
      const error = body && body.error ? body.error : { code: `http_${request.status}`, message: "upload failed" };
      // The notice says what went wrong; a full bar beside it would read as success.
      $("upload-status").hidden = true;
      showNotice(`${file.name} was not accepted: ${error.message} (${error.code})`);
    }
  });
  request.addEventListener("error", () => {
    $("upload-button").disabled = false;
    $("upload-status").hidden = true;
    showNotice(`${file.name} did not reach the server; check the connection and try again.`);
  });
  request.send(form);
}

// --- jobs ---------------------------------------------------------------------------------------

function jobRow(job) {
  const link = el("a", { href: `#/jobs/${job.id}` }, shortId(job.id));
  const progress = job.progress.segments_total
    ? `${job.progress.segments_done}/${job.progress.segments_total}`
    : "—";
  return el(
    "tr",
    { dataset: { jobId: job.id, status: job.status } },
    el("td", {}, link),
    el("td", {}, job.video.filename || job.video.source || "—"),
    el("td", { class: "external-id" }, job.external_id || "—"),
    el("td", {}, badge(job.status)),
    el("td", { class: "wide-only" }, progress),
    el("td", { class: "result" }, resultCell({
      status: job.status,
      verdict: job.verdict,
      label: job.verdict_label,
      errorCode: job.error && job.error.code,
      errorMessage: job.error && job.error.message,
      partial: job.partial,
    })),
    el("td", {}, fmt(job.score)),
    el("td", { class: "wide-only" }, when(job.created_at)),
  );
}

// --- triage filters ------------------------------------------------------------------------------

// The filters in the address (#/?verdict=fake,inconclusive&created_from=2026-12-01): what the list
// shows after a reload, or for whoever the address was sent to. Names it does not know are dropped.
function filtersFromHash() {
  const hash = location.hash.replace(/^#/, "");
  const query = hash.includes("?") ? hash.slice(hash.indexOf("?") + 1) : "";
  const given = new URLSearchParams(query);
  const filters = new URLSearchParams();
  for (const name of [...FILTER_CHOICES, ...FILTER_FIELDS]) {
    const values = given.getAll(name).flatMap((value) => value.split(",")).map((value) => value.trim()).filter(Boolean);
    if (values.length) filters.set(name, FILTER_CHOICES.includes(name) ? [...new Set(values)].join(",") : values[0]);
  }
  return filters;
}

function filtersFromForm() {
  const form = new FormData($("filters"));
  const filters = new URLSearchParams();
  for (const name of FILTER_CHOICES) {
    const values = form.getAll(name);
    if (values.length) filters.set(name, values.join(","));
  }
  for (const name of FILTER_FIELDS) {
    const value = String(form.get(name) || "").trim();
    if (value) filters.set(name, value);
  }
  return filters;
}

function fillFilterForm(filters) {
  for (const box of $("filters").querySelectorAll("input[type=checkbox]")) {
    box.checked = (filters.get(box.name) || "").split(",").includes(box.value);
  }
  for (const name of FILTER_FIELDS) $("filters").elements[name].value = filters.get(name) || "";
  // A choice in the words of its checkbox ("no signs found", not "real").
  const words = (name, value) => {
    const box = [...$("filters").elements[name] || []].find((input) => input.value === value);
    return box ? box.parentElement.textContent.trim() : value;
  };
  const parts = [...filters].map(([name, value]) =>
    `${FILTER_NAMES[name]} ${FILTER_CHOICES.includes(name) ? value.split(",").map((v) => words(name, v)).join(", ") : value}`);
  $("filters-summary").textContent = parts.length ? `Filtered by ${parts.join("; ")}` : "";
  $("filters-summary").hidden = parts.length === 0;
  $("filters-clear").hidden = parts.length === 0;
  // Open where there is room, or when filters are on; a phone shows the list first otherwise.
  $("filters-box").open = parts.length > 0 || window.matchMedia("(min-width: 641px)").matches;
}

// A day picked on the page is a day where the person is: its local start and end as instants.
function apiFilters(filters) {
  const query = new URLSearchParams(filters);
  const day = (value, time) => {
    const instant = new Date(`${value}T${time}`);
    return /^\d{4}-\d{2}-\d{2}$/.test(value) && !Number.isNaN(instant.getTime()) ? instant.toISOString() : value;
  };
  if (query.has("created_from")) query.set("created_from", day(query.get("created_from"), "00:00:00"));
  if (query.has("created_to")) query.set("created_to", day(query.get("created_to"), "23:59:59.999"));
  return query;
}

function jobsPath(filters, cursor) {
  const query = apiFilters(filters);
  query.set("limit", String(JOBS_PAGE));
  if (cursor) query.set("cursor", cursor);
  return `/v1/jobs?${query}`;
}

// Commas left as they are: the address stays readable (#/?status=failed,canceled).
function filterQuery(filters) {
  return [...filters].map(([name, value]) => `${name}=${encodeURIComponent(value).replaceAll("%2C", ",")}`).join("&");
}

function applyFilters(filters) {
  const query = filterQuery(filters);
  const hash = query ? `#/?${query}` : "#/";
  if (location.hash === hash) route(); // the same filters again: fetch the list afresh
  else location.hash = hash;
}

// --- jobs list ----------------------------------------------------------------------------------

async function renderJobs() {
  const shownHash = location.hash;
  const filters = filtersFromHash();
  const filterKey = filters.toString();
  if (state.jobsFilter !== filterKey) {
    state.jobsFilter = filterKey;
    state.jobsCursor = undefined;
    state.olderJobs = [];
    // The rows of other filters must not stay on screen (nor their "Older jobs") meanwhile.
    fillRows("jobs-body", []);
    $("jobs-more").hidden = true;
    $("jobs-empty").hidden = true;
  }
  try {
    const page = await apiJson(jobsPath(filters, null));
    if (state.jobsFilter !== filterKey) return; // the filters changed while this page was coming
    const jobs = [...page.items, ...state.olderJobs.filter((old) => !page.items.some((j) => j.id === old.id))];
    if (state.jobsCursor === undefined) state.jobsCursor = page.next_cursor;
    fillRows("jobs-body", jobs.map(jobRow));
    $("jobs-empty").textContent = filterKey ? "No jobs match these filters." : "No jobs yet.";
    $("jobs-empty").hidden = jobs.length > 0;
    $("jobs-more").hidden = !state.jobsCursor;
    $("jobs-updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.jobsLoaded = shownHash;
    showError(null);
  } catch (error) {
    showError(error);
    if (error instanceof ApiError && error.status === 422) {
      // Filters the API refused (a range that ends before it starts): the rows of earlier
      // filters must not stand under them as if they were the answer.
      fillRows("jobs-body", []);
      $("jobs-empty").textContent = "No list for these filters: see the error above.";
      $("jobs-empty").hidden = false;
      $("jobs-more").hidden = true;
    }
  }
  poll(renderJobs, JOBS_POLL_MS);
}

async function loadOlderJobs() {
  if (!state.jobsCursor) return;
  const filterKey = state.jobsFilter;
  const page = await apiJson(jobsPath(filtersFromHash(), state.jobsCursor));
  if (state.jobsFilter !== filterKey) return;
  state.olderJobs.push(...page.items);
  state.jobsCursor = page.next_cursor;
  await renderJobs();
}

// --- one job -----------------------------------------------------------------------------------

function scoreText(job, decision) {
  if (!known(job.score)) return "";
  const parts = [`P(fake) ${fmt(job.score)}`];
  if (known(decision.threshold)) parts.push(`threshold ${fmt(decision.threshold)}`);
  let text = `${parts[0]} (${parts.slice(1).join(", ") || "no threshold"})`;
  if (decision.band) text += `; inconclusive between ${fmt(decision.band[0])} and ${fmt(decision.band[1])}`;
  return text;
}

// The score on a 0–1 bar, with the threshold and the inconclusive band marked.
function renderScale(job, decision) {
  const scale = $("job-scale");
  if (!known(job.score)) {
    scale.hidden = true;
    scale.replaceChildren();
    return;
  }
  const pct = (v) => `${(Math.min(Math.max(Number(v), 0), 1) * 100).toFixed(2)}%`;
  const parts = [];
  if (decision.band) {
    parts.push(el("div", { class: "band", style: `left: ${pct(decision.band[0])}; width: calc(${pct(decision.band[1])} - ${pct(decision.band[0])})`,
      title: `inconclusive between ${fmt(decision.band[0])} and ${fmt(decision.band[1])}` }));
  }
  if (known(decision.threshold)) {
    parts.push(el("div", { class: "threshold", style: `left: ${pct(decision.threshold)}`, title: `threshold ${fmt(decision.threshold)}` }));
  }
  parts.push(el("div", { class: "marker", style: `left: ${pct(job.score)}`, title: `P(fake) ${fmt(job.score)}`,
    dataset: { score: job.score } }));
  parts.push(el("span", { class: "end lo" }, "0 no sign"), el("span", { class: "end hi" }, "1 manipulated"));
  scale.replaceChildren(...parts);
  scale.setAttribute("aria-label", scoreText(job, decision));
  scale.setAttribute("role", "img");
  scale.hidden = false;
}

function paragraphs(text) {
  return String(text)
    .split(/\n\s*\n|\n/)
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => el("p", {}, line));
}

// What the result means for a person, and for no_face or a failure what to do next. The API's
// explanation wins; the page's own words cover answers without one.
function explanationNodes(job, decision) {
  if (job.status === "failed") {
    const error = job.error || { code: "failed", message: "the analysis stopped without saying why" };
    return [
      el("p", {}, el("strong", {}, "The analysis failed: "), error.message || "no message",
        " ", el("span", { class: "error-code" }, `(${error.code})`)),
      el("p", { class: "muted" }, "Nothing was scored. If the file plays elsewhere, try re-encoding it as H.264 MP4, or upload it again."),
    ];
  }
  if (job.status === "canceled" && job.partial) {
    const { segments_done: done, segments_total: total } = job.progress;
    return [el("p", {}, `This job was canceled after ${done} of ${total} segments were scored. The scores, faces and segments below cover only that part of the video: there is no verdict for the whole video.`)];
  }
  if (job.status === "canceled") return [el("p", {}, "This job was canceled before it finished; nothing was scored.")];
  if (job.status !== "succeeded") return [];
  if (job.explanation) return paragraphs(job.explanation);
  const threshold = known(decision.threshold) ? fmt(decision.threshold) : "the threshold";
  switch (job.verdict) {
    case "no_face":
      return [
        el("p", {}, "No face was found in the frames that were sampled, so nothing was scored. This says nothing either way about whether the video was manipulated."),
        el("p", {}, "What to try:"),
        el("ul", {},
          el("li", {}, "a clip in which a face is visible, facing the camera and not too small;"),
          el("li", {}, "sharper or better lit footage (see the input statistics below);"),
          el("li", {}, "a higher sampling rate (sample_fps) for short clips or faces that appear briefly;"),
          el("li", {}, "a trimmed clip that starts where the person is on screen.")),
      ];
    case "inconclusive":
      return [el("p", {}, `The score is inside the band around the threshold (${threshold}) where this model cannot tell manipulated from genuine video. Treat it as no answer: look at the faces below and check the video by other means.`)];
    case "real": {
      const near = nearThreshold(job, decision);
      return [
        el("p", {}, `The score is below the threshold (${threshold}). This is not proof that the ${job.media_type === "image" ? "picture" : "video"} is authentic: the model can miss manipulation it was not trained on, so check it by other means before relying on it.`),
        near ? el("p", { class: "note" }, "The score is close to the threshold: treat this result as uncertain.") : null,
      ].filter(Boolean);
    }
    case "fake":
      return [
        el("p", {}, `The score is above the threshold (${threshold}): the model found signs that faces in this video were swapped or re-enacted. Check the most suspicious faces below, and confirm by other means before publishing.`),
        nearThreshold(job, decision) ? el("p", { class: "note" }, "The score is close to the threshold: treat this result as uncertain.") : null,
      ].filter(Boolean);
    default:
      return [];
  }
}

function roughDuration(seconds) {
  if (seconds < 60) return `${Math.max(1, Math.ceil(seconds))} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

// Time left for a running video, from its pace so far: the time since it started over the
// segments scored since. Nothing to go on before the first segment, so it says so.
function estimateText(job, progress) {
  if (job.status !== "processing" || job.media_type === "image" || !job.started_at) return "";
  const total = progress.segments_total || 0;
  const done = progress.segments_done || 0;
  if (!total) return "";
  if (done === 0) return "· time left: estimated once the first segment is scored";
  if (done >= total) return "· finishing";
  const elapsed = (Date.now() - new Date(job.started_at).getTime()) / 1000;
  if (!(elapsed > 0)) return "";
  return `· about ${roughDuration((elapsed / done) * (total - done))} left`;
}

// Only for a model without an inconclusive band: with one, the API's verdict already says so.
function nearThreshold(job, decision) {
  return !decision.band && known(job.score) && known(decision.threshold)
    && Math.abs(job.score - decision.threshold) < NEAR_THRESHOLD;
}

function renderJobHead(job) {
  const decision = decisionOf(job);
  $("job-title").textContent = job.video.filename || job.external_id || `Job ${shortId(job.id)}`;
  $("job-id").textContent = job.id;
  const verdict = $("job-verdict");
  const succeeded = job.status === "succeeded" && job.verdict;
  verdict.textContent = succeeded
    ? verdictWords(job.verdict, job.verdict_label)
    : job.partial ? "Canceled (partial results)" : STATUS_WORDS[job.status] || job.status;
  const uncertain = succeeded && ["real", "fake"].includes(job.verdict) && nearThreshold(job, decision);
  verdict.className = `verdict ${succeeded ? job.verdict : job.status}${uncertain ? " uncertain" : ""}`;
  verdict.dataset.verdict = job.verdict || "";
  verdict.dataset.confidence = uncertain ? "low" : "";
  $("job-score").textContent = job.status === "failed" && job.error ? `${job.error.code}` : scoreText(job, decision);
  renderScale(job, decision);
  const explanation = explanationNodes(job, decision);
  $("job-explanation").replaceChildren(...explanation);
  $("job-explanation").className = `panel explanation ${succeeded ? job.verdict : job.status}`;
  $("job-explanation").hidden = explanation.length === 0;
  $("job-status").replaceChildren(badge(job.status));
  const total = job.progress.segments_total || 0;
  $("job-progress").value = total ? job.progress.segments_done / total : 0;
  $("job-progress-text").textContent =
    job.media_type === "image" ? "" : total ? `${job.progress.segments_done} of ${total} segments` : "";
  $("job-eta").textContent = estimateText(job, job.progress);
  state.shownJob = job;
  const video = job.video;
  $("job-input-label").textContent = job.media_type === "image" ? "image" : "video";
  $("job-video").textContent = job.media_type === "image" && video.width
    ? `image, ${video.width}×${video.height}, ${video.codec}`
    : video.duration_s
    ? `${fmt(video.duration_s, 2)} s, ${video.width}×${video.height}, ${fmt(video.fps, 2)} fps, ${video.codec}`
    : video.filename || video.source || "not probed";
  $("job-external-row").hidden = !job.external_id;
  $("job-external-id").textContent = job.external_id || "";
  $("job-batch-row").hidden = !job.batch_id;
  $("job-batch").textContent = job.batch_id ? shortId(job.batch_id) : "";
  $("job-batch").href = job.batch_id ? `#/batches/${job.batch_id}` : "#/batches";
  const model = job.model;
  $("job-model").textContent = model
    ? [model.name, model.version].filter(Boolean).join(" ")
    : TERMINAL.has(job.status) ? "none: the video was not analysed" : "chosen when the analysis starts";
  $("job-caveat").textContent = model && model.caveat ? model.caveat : "";
  $("job-limits").hidden = !(succeeded && model && model.caveat);
  $("job-untrained").hidden = !(model && model.trained === false);
  $("job-error-row").hidden = !job.error;
  $("job-error-row").querySelector("th").textContent = job.status === "canceled" ? "reason" : "error";
  $("job-error").className = job.status === "canceled" ? "muted" : "error-text";
  $("job-error").textContent = job.error ? `${job.error.message} (${job.error.code})` : "";
  $("job-report").hidden = job.status !== "succeeded";
  $("job-cancel").hidden = TERMINAL.has(job.status);
  $("job-delete").hidden = false;
  for (const id of ["job-report", "job-cancel", "job-delete"]) $(id).dataset.jobId = job.id;
}

function renderChart(job, frames, segments) {
  const decision = decisionOf(job);
  const width = Math.max(320, Math.round($("chart").clientWidth || 760));
  const narrow = width < 520;
  const height = narrow ? 200 : 240;
  const pad = { left: 58, right: 10, top: 12, bottom: 36 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const duration = Math.max(job.video.duration_s || 0, ...frames.map((f) => f.t), 1e-6);
  const x = (t) => pad.left + plotW * Math.min(Math.max(t / duration, 0), 1);
  const y = (s) => pad.top + plotH * (1 - Math.min(Math.max(s, 0), 1));
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "P(fake) over time");
  const add = (tag, attributes, title) => {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    if (title) {
      const tip = document.createElementNS(SVG_NS, "title");
      tip.textContent = title;
      node.append(tip);
    }
    svg.append(node);
    return node;
  };
  add("rect", { x: pad.left, y: pad.top, width: plotW, height: plotH, class: "plot" });
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    add("line", { x1: pad.left, x2: pad.left + plotW, y1: y(tick), y2: y(tick), class: "grid" });
    add("text", { x: pad.left - 6, y: y(tick) + 4, "text-anchor": "end", class: "tick" }).textContent = tick.toFixed(2);
  }
  const yLabel = add("text", { x: 0, y: 0, "text-anchor": "middle", class: "axis-label y-label",
    transform: `translate(14 ${pad.top + plotH / 2}) rotate(-90)` });
  yLabel.textContent = "P(fake)";
  const xTicks = narrow ? 3 : 5;
  for (let k = 0; k <= xTicks; k += 1) {
    const t = (duration * k) / xTicks;
    const anchor = k === 0 ? "start" : k === xTicks ? "end" : "middle";
    add("text", { x: x(t), y: pad.top + plotH + 14, "text-anchor": anchor, class: "tick" }).textContent = `${t.toFixed(1)} s`;
  }
  add("text", { x: pad.left + plotW / 2, y: height - 4, "text-anchor": "middle", class: "axis-label x-label" }).textContent = "time in the video";
  // Segments as filled bars from 0 up to their score, drawn under the frames.
  for (const segment of segments) {
    if (!known(segment.score)) continue;
    const left = x(segment.start_s) + 1;
    const barW = Math.max(x(segment.end_s) - x(segment.start_s) - 2, 2);
    const title = `segment ${segment.index} (${fmt(segment.start_s, 1)}–${fmt(segment.end_s, 1)} s): P(fake) ${fmt(segment.score)}`;
    add("rect", { x: left, width: barW, y: y(segment.score), height: Math.max(y(0) - y(segment.score), 1),
      class: "segment-bar", "data-segment": segment.index }, title);
    add("line", { x1: left, x2: left + barW, y1: y(segment.score), y2: y(segment.score), class: "segment-top" }, title);
  }
  // The band over the bars, translucent, so both stay visible.
  if (decision.band) {
    add("rect", { x: pad.left, width: plotW, y: y(decision.band[1]), height: Math.max(y(decision.band[0]) - y(decision.band[1]), 1),
      class: "band" }, `inconclusive between ${fmt(decision.band[0])} and ${fmt(decision.band[1])}`);
  }
  if (known(decision.threshold)) {
    add("line", { x1: pad.left, x2: pad.left + plotW, y1: y(decision.threshold), y2: y(decision.threshold), class: "threshold" },
      `threshold ${fmt(decision.threshold)}`);
  }
  let run = [];
  const flush = () => {
    if (run.length > 1) add("polyline", { points: run.join(" "), class: "frame-line" });
    run = [];
  };
  for (const frame of frames) {
    if (!known(frame.score)) {
      flush();
      continue;
    }
    run.push(`${x(frame.t).toFixed(1)},${y(frame.score).toFixed(1)}`);
    add("circle", { cx: x(frame.t), cy: y(frame.score), r: 3, class: "frame-point" },
      `t=${frame.t.toFixed(2)} s, frame ${frame.index}, P(fake) ${fmt(frame.score)}`);
  }
  flush();
  $("legend-band").hidden = !decision.band;
  $("legend-band-text").hidden = !decision.band;
  $("chart").replaceChildren(svg);
}

// A listed face above the threshold under a verdict that is not "fake" looks like a contradiction:
// say how the faces become one verdict.
function renderAggregationNote(job, items) {
  const note = $("aggregation-note");
  const { threshold } = decisionOf(job);
  const above = known(threshold) ? items.filter((item) => item.score >= threshold) : [];
  if (job.explanation || !job.verdict || job.verdict === "fake" || above.length === 0) {
    note.hidden = true;
    note.textContent = "";
    return;
  }
  const aggregation = aggregationName(job.model);
  const faces = above.length === 1 ? "One face below scores" : `${above.length} faces below score`;
  note.textContent =
    `${faces} above the threshold (${fmt(threshold)}), yet the video's verdict is ` +
    `"${verdictWords(job.verdict, job.verdict_label)}". The verdict is for the whole video: each frame counts ` +
    `its most suspicious face, and the frames are combined over the whole video` +
    `${aggregation ? ` (aggregation: ${aggregation})` : ""}, so a few suspicious frames do not decide it on ` +
    "their own. Look at these faces yourself before relying on the verdict.";
  note.hidden = false;
}

async function renderFaces(job) {
  const { items } = await apiJson(`/v1/jobs/${job.id}/explanations`);
  const { threshold } = decisionOf(job);
  $("faces-empty").hidden = items.length > 0;
  $("faces-panel").hidden = items.length === 0 && job.verdict === "no_face";
  renderAggregationNote(job, items);
  const figures = [];
  for (const item of items) {
    const [crop, heatmap] = await Promise.all([imageUrl(item.crop_url), imageUrl(item.heatmap_url)]);
    const above = known(threshold) && item.score >= threshold;
    figures.push(
      el(
        "figure",
        { class: above ? "face above" : "face", dataset: { rank: item.rank, score: item.score } },
        el("div", { class: "pair" },
          el("img", { src: crop, alt: `face at ${item.t.toFixed(2)} s`, class: "crop" }),
          el("img", { src: heatmap, alt: `Grad-CAM heatmap at ${item.t.toFixed(2)} s`, class: "heatmap" })),
        el("figcaption", {},
          el("strong", {}, `#${item.rank} P(fake) ${fmt(item.score)}`),
          el("br"),
          `${item.t.toFixed(2)} s, frame ${item.frame_index}${item.track !== null ? `, track ${item.track}` : ""}`),
      ),
    );
  }
  $("faces").replaceChildren(...figures);
}

// --- image jobs: the picture with its faces boxed, each box coloured by its score ----------------

function faceColour(score) {
  // Green at 0, amber in between, red at 1: the same reading as the score scale.
  const hue = Math.round(120 * (1 - Math.min(Math.max(score, 0), 1)));
  return `hsl(${hue}, 80%, 42%)`;
}

async function renderImage(job) {
  const existing = $("image-panel");
  if (job.media_type !== "image") {
    if (existing) existing.remove();
    return;
  }
  const panel = existing || el("div", { class: "panel", id: "image-panel", "data-testid": "image-result" });
  if (!existing) $("job-results").prepend(panel);
  const { threshold } = decisionOf(job);
  const faces = job.faces || [];
  const { width, height } = job.video;
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", "image-boxes");
  faces.forEach((face, index) => {
    const [x1, y1, x2, y2] = face.box;
    const rect = document.createElementNS(SVG_NS, "rect");
    const above = known(threshold) && face.score >= threshold;
    Object.entries({ x: x1, y: y1, width: x2 - x1, height: y2 - y1, stroke: faceColour(face.score),
      class: above ? "image-face above" : "image-face", "data-score": face.score, "data-face": index,
      "vector-effect": "non-scaling-stroke" }).forEach(([name, value]) => rect.setAttribute(name, value));
    const title = document.createElementNS(SVG_NS, "title");
    title.textContent = `face ${index + 1}: P(fake) ${fmt(face.score)}`;
    rect.append(title);
    svg.append(rect);
  });
  let picture;
  try {
    picture = el("img", { src: await imageUrl(`/v1/jobs/${job.id}/image`), alt: "the analysed picture" });
  } catch (error) {
    // A one-frame video, or a picture read from a URL: the boxes are drawn without it.
    picture = el("div", { class: "image-missing muted", style: `aspect-ratio: ${width} / ${height}` },
      "the picture itself is not available");
  }
  panel.replaceChildren(
    el("h3", {}, "Faces in the image"),
    el("p", { class: "muted small" }, faces.length
      ? "Each face found, boxed in a colour from green (P(fake) 0) to red (1)."
      : "No face was found in the image."),
    el("div", { class: "image-frame" }, picture, svg),
    el("ol", { class: "image-faces" }, ...faces.map((face, index) =>
      el("li", { style: `--face-colour: ${faceColour(face.score)}` },
        `face ${index + 1}: P(fake) ${fmt(face.score)} (detection ${fmt(face.det_score, 2)})`))),
  );
}

function renderSegments(segments) {
  fillRows(
    "segments-body",
    segments.map((segment) =>
      el(
        "tr",
        { dataset: { segment: segment.index } },
        el("td", {}, segment.index),
        el("td", {}, `${fmt(segment.start_s, 2)} s`),
        el("td", {}, `${fmt(segment.end_s, 2)} s`),
        el("td", {}, segment.frame_count),
        el("td", {}, segment.face_count),
        el("td", { class: "segment-score" }, fmt(segment.score)),
        el("td", {}, segment.status),
      ),
    ),
  );
}

const withUnit = (digits, unit) => (v) => (known(v) ? `${fmt(v, digits)}${unit}` : "—");
// Statistics about faces have no value when none was found; say so instead of a bare dash.
const FACE_STATISTICS = new Set(["face_sharpness", "face_size_px", "faces_per_frame"]);
const STATISTIC_LABELS = [
  ["brightness_pct", "brightness", withUnit(1, " %")],
  ["histogram_mean", "luma mean", withUnit(1, "")],
  ["histogram_std", "luma std", withUnit(1, "")],
  ["sharpness", "sharpness (Laplacian variance)", withUnit(1, "")],
  ["face_sharpness", "face sharpness", withUnit(1, "")],
  ["face_size_px", "face size", withUnit(0, " px")],
  ["faces_per_frame", "faces per frame", withUnit(2, "")],
  ["frames_sampled", "frames sampled", (v) => (known(v) ? v : "—")],
];

async function renderStatistics(job) {
  try {
    const statistics = await apiJson(`/v1/jobs/${job.id}/statistics`);
    const noFace = job.verdict === "no_face";
    $("statistics").replaceChildren(
      ...STATISTIC_LABELS.map(([name, label, show]) => {
        const value = statistics.input[name];
        const text = !known(value) && noFace && FACE_STATISTICS.has(name) ? "no face found" : show(value);
        return el("tr", {}, el("th", {}, label), el("td", { dataset: { statistic: name } }, text));
      }),
    );
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) throw error;
    $("statistics").replaceChildren(el("tr", {}, el("td", {}, "no statistics for this job")));
  }
}

// A running job is followed through its event stream (GET /v1/jobs/{id}/events) instead of a
// poll every second. EventSource cannot send the key, so a short-lived token for this job opens
// it; when a stream cannot be opened or breaks for good, the page polls as before.
async function followJob(jobId) {
  const route = state.route;
  let opened;
  try {
    opened = await (await api(`/v1/jobs/${jobId}/events/token`, { method: "POST" })).json();
  } catch (_) {
    state.eventsFailed = true;
    poll(() => renderJob(jobId), JOB_POLL_MS);
    return;
  }
  if (state.route !== route) return;
  stopPolling();
  const source = new EventSource(opened.events_url);
  state.events = source;
  source.addEventListener("status", (event) => renderJobHead(JSON.parse(event.data)));
  source.addEventListener("progress", (event) => {
    const { progress } = JSON.parse(event.data);
    const total = progress.segments_total || 0;
    $("job-progress").value = total ? progress.segments_done / total : 0;
    $("job-progress-text").textContent = total ? `${progress.segments_done} of ${total} segments` : "";
    if (state.shownJob && state.shownJob.id === jobId) $("job-eta").textContent = estimateText(state.shownJob, progress);
  });
  source.addEventListener("end", () => {
    stopPolling();
    if (state.route === route) renderJob(jobId);
  });
  source.addEventListener("error", () => {
    // A dropped connection reconnects by itself; a refused one (CLOSED) falls back to polling.
    if (source.readyState !== EventSource.CLOSED || state.events !== source) return;
    state.events = null;
    state.eventsFailed = true;
    if (state.route === route) poll(() => renderJob(jobId), JOB_POLL_MS);
  });
}

async function renderJob(jobId) {
  let job;
  try {
    job = await apiJson(`/v1/jobs/${jobId}`);
    showError(null);
  } catch (error) {
    showError(error);
    if (!(error instanceof ApiError && error.status === 404)) poll(() => renderJob(jobId), JOB_POLL_MS * 3);
    return;
  }
  renderJobHead(job);
  if (!TERMINAL.has(job.status)) {
    $("job-results").hidden = true;
    if (state.eventsFailed) poll(() => renderJob(jobId), JOB_POLL_MS);
    else await followJob(jobId);
    return;
  }
  // A job canceled part way keeps what was scored: shown like a finished job's, without a verdict.
  if (job.status !== "succeeded" && !job.partial) {
    $("job-results").hidden = true;
    document.body.dataset.jobLoaded = jobId;
    return;
  }
  try {
    const [segments, frames] = await Promise.all([
      allPages(`/v1/jobs/${jobId}/segments?limit=500`),
      allPages(`/v1/jobs/${jobId}/frames?limit=500`),
    ]);
    // Shown before drawing, so the chart is drawn at the width it will have.
    $("job-results").hidden = false;
    const scored = frames.some((frame) => known(frame.score)) || segments.some((segment) => known(segment.score));
    $("chart-panel").hidden = !scored || job.media_type === "image";
    if (scored) renderChart(job, frames, segments);
    else $("chart").replaceChildren();
    // One picture is one frame: a table of segments says nothing more than the verdict.
    $("segments-panel").hidden = job.media_type === "image";
    renderSegments(segments);
    releaseBlobs();
    await Promise.all([renderFaces(job), renderStatistics(job), renderImage(job)]);
    document.body.dataset.jobLoaded = jobId;
  } catch (error) {
    showError(error);
  }
}

async function cancelJob(jobId) {
  $("job-cancel").disabled = true;
  try {
    await api(`/v1/jobs/${jobId}/cancel`, { method: "POST" });
    showNotice("The job was canceled.", "good");
  } catch (error) {
    showNotice(`The job could not be canceled: ${errorText(error)}`);
  } finally {
    $("job-cancel").disabled = false;
  }
  route();
}

async function deleteJob(jobId) {
  const ok = window.confirm(
    "Delete this job? Its video, scores, heatmaps and statistics are removed for good. This cannot be undone.",
  );
  if (!ok) return;
  $("job-delete").disabled = true;
  try {
    await api(`/v1/jobs/${jobId}`, { method: "DELETE" });
    showNotice(`Job ${shortId(jobId)} and its video were deleted.`, "good");
    location.hash = "#/";
  } catch (error) {
    showNotice(`The job could not be deleted: ${errorText(error)}`);
  } finally {
    $("job-delete").disabled = false;
  }
}

async function downloadReport(jobId) {
  $("job-report").disabled = true;
  try {
    await download(`/v1/jobs/${jobId}/report`, `deepfakestream-report-${jobId}.html`);
  } catch (error) {
    showNotice(`The report could not be downloaded: ${errorText(error)}`);
  } finally {
    $("job-report").disabled = false;
  }
}

// --- batches -----------------------------------------------------------------------------------

// A batch whose items all failed has "completed" in the API's sense; a person must not read
// that as success.
function batchState(batch) {
  const { succeeded, failed } = batch.counts;
  if (batch.status === "completed" && failed > 0) {
    if (succeeded === 0) return { text: failed === batch.jobs_total ? "all failed" : "none succeeded", kind: "all-failed" };
    return { text: `completed, ${failed} failed`, kind: "some-failed" };
  }
  return { text: batch.status, kind: batch.status };
}

// --- a batch from local files ------------------------------------------------------------------

function suffixOf(name) {
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(dot).toLowerCase() : "";
}

// "video", "image", or null for a file the batch leaves out (told by its name, then its type).
function mediaKind(file) {
  if (file.name.startsWith(".")) return null;
  const suffix = suffixOf(file.name);
  if (VIDEO_SUFFIXES.has(suffix)) return "video";
  if (IMAGE_SUFFIXES.has(suffix)) return "image";
  if (file.type.startsWith("video/")) return "video";
  if (IMAGE_TYPES.has(file.type)) return "image";
  return null;
}

function fileSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(0)} KB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GB`;
}

function plural(count, one, many = `${one}s`) {
  return `${count} ${count === 1 ? one : many}`;
}

// Every file under a dropped folder, each with its path inside the drop.
async function filesOfEntry(entry) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    return [{ file, path: entry.fullPath.replace(/^\//, "") }];
  }
  const reader = entry.createReader();
  const children = [];
  // readEntries answers a part of the folder at a time, and nothing once it is read.
  for (;;) {
    const part = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!part.length) break;
    children.push(...part);
  }
  const nested = await Promise.all(children.map(filesOfEntry));
  return nested.flat();
}

function pickFiles(found) {
  if (state.uploading) return;
  const known = new Set(state.picked.media.map((item) => item.path));
  for (const { file, path } of found) {
    if (known.has(path)) continue;
    known.add(path);
    const kind = mediaKind(file);
    if (kind) state.picked.media.push({ file, path, kind, status: "waiting", error: null, sent: 0 });
    else state.picked.skipped.push(path);
  }
  renderPicked();
}

function pickInput(input) {
  pickFiles([...input.files].map((file) => ({ file, path: file.webkitRelativePath || file.name })));
  input.value = "";
}

async function dropFiles(event) {
  event.preventDefault();
  $("batch-drop").classList.remove("over");
  const items = [...(event.dataTransfer.items || [])].filter((item) => item.kind === "file");
  // The entries are taken before anything is awaited: the drop's data is gone afterwards.
  const entries = items.map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null));
  const plain = items.map((item) => item.getAsFile());
  const found = [];
  try {
    for (const [index, entry] of entries.entries()) {
      if (entry) found.push(...(await filesOfEntry(entry)));
      else if (plain[index]) found.push({ file: plain[index], path: plain[index].name });
    }
  } catch (error) {
    showNotice(`The dropped folder could not be read: ${errorText(error)}`);
  }
  pickFiles(found);
}

function clearPicked() {
  if (state.uploading) return;
  state.picked = { media: [], skipped: [] };
  renderPicked();
}

function uploadCell(item) {
  if (item.status === "failed") {
    return el("td", { class: "error-cell" }, el("span", { class: "error-code" }, item.error.code), ` ${item.error.message}`);
  }
  if (item.status === "sending") return el("td", {}, `${Math.round((item.sent / Math.max(item.file.size, 1)) * 100)}%`);
  return el("td", { class: item.status === "waiting" ? "muted" : "" }, item.status);
}

function renderPicked() {
  const { media, skipped } = state.picked;
  const videos = media.filter((item) => item.kind === "video").length;
  const photos = media.length - videos;
  const failed = media.filter((item) => item.status === "failed").length;
  const uploaded = media.filter((item) => item.status === "uploaded").length;
  const picked = $("batch-picked");
  picked.hidden = media.length + skipped.length === 0;
  const parts = [
    `${plural(media.length, "file")} to send (${plural(videos, "video")}, ${plural(photos, "photo")}, ${fileSize(media.reduce((sum, item) => sum + item.file.size, 0))})`,
    skipped.length
      ? el("span", { class: "skipped", title: skipped.join("\n"), dataset: { skipped: skipped.length } },
        `; ${plural(skipped.length, "other file")} skipped (neither a video nor a photo)`)
      : null,
    state.uploading ? el("strong", {}, `; ${uploaded} of ${media.length} uploaded`) : null,
    failed ? el("span", { class: "error-text" }, `; ${plural(failed, "file")} could not be uploaded`) : null,
  ];
  picked.replaceChildren(...parts.filter(Boolean));
  picked.dataset.media = media.length;
  picked.dataset.skipped = skipped.length;
  $("batch-files-wrap").hidden = media.length === 0;
  fillRows("batch-files-body", media.map((item) => el("tr", { dataset: { path: item.path, status: item.status } },
    el("td", { class: "file-path" }, item.path),
    el("td", {}, item.kind === "image" ? "photo" : "video"),
    el("td", {}, fileSize(item.file.size)),
    uploadCell(item))));
  $("batch-start").disabled = state.uploading || media.length === 0;
  $("batch-files-clear").hidden = state.uploading || media.length + skipped.length === 0;
  for (const id of ["batch-files", "batch-folder"]) $(id).disabled = state.uploading;
}

// Progress events come many times a second per file: the list is redrawn once a frame at most.
function renderPickedSoon() {
  if (state.pickedFrame) return;
  state.pickedFrame = requestAnimationFrame(() => {
    state.pickedFrame = null;
    renderPicked();
  });
}

function failItem(item, error) {
  item.status = "failed";
  item.error = error instanceof ApiError ? { code: error.code, message: error.message }
    : { code: error.code || "upload_failed", message: String(error.message || error) };
}

// PUT the bytes where POST /v1/uploads said. The key goes only to the API's own upload route
// (send_api_key): a presigned storage URL is signed already, and must never see the key.
function sendBytes(reserved, item) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open(reserved.method || "PUT", reserved.url);
    for (const [name, value] of Object.entries(reserved.headers || {})) {
      // The browser sets the length itself and refuses to be told; an answered Authorization
      // would be a placeholder at best.
      if (["authorization", "content-length", "host"].includes(name.toLowerCase())) continue;
      request.setRequestHeader(name, value);
    }
    if (reserved.send_api_key === true) request.setRequestHeader("Authorization", `Bearer ${state.key}`);
    request.upload.addEventListener("progress", (event) => {
      item.sent = event.loaded;
      renderPickedSoon();
    });
    request.addEventListener("load", () => {
      if (request.status >= 200 && request.status < 300) {
        resolve();
        return;
      }
      let code = `http_${request.status}`;
      let message = request.statusText || "the upload was refused";
      try {
        const body = JSON.parse(request.responseText);
        if (body && body.error) ({ code, message } = body.error);
      } catch (_) {
        // storage answers XML, or nothing: keep the status line
        if (/<Code>([^<]+)<\/Code>/.test(request.responseText)) code = request.responseText.match(/<Code>([^<]+)<\/Code>/)[1];
      }
      reject(new ApiError(request.status, code, message));
    });
    request.addEventListener("error", () => reject(new ApiError(0, "upload_failed", "the file did not reach storage (network error)")));
    request.send(item.file);
  });
}

async function uploadItem(item) {
  if (item.file.size === 0) {
    failItem(item, { code: "empty_file", message: "the file is empty" });
    return;
  }
  item.status = "sending";
  item.sent = 0;
  renderPicked();
  const reserved = await postJson("/v1/uploads", { size_bytes: item.file.size, filename: item.file.name.slice(-255) });
  await sendBytes(reserved, item);
  item.uploadId = reserved.upload_id;
  item.status = "uploaded";
}

// A refused key stops everything: every other request would be refused too.
function keyRefused(error) {
  return error instanceof ApiError && (error.status === 401 || error.code === "too_many_auth_failures");
}

function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `web-${[...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join("")}`;
}

// POST /v1/batches with what went up. A file the service refuses (it names items[i]) is marked
// failed and the rest is sent again, so one bad file does not sink the batch.
async function createBatch(items, name) {
  const sent = [...items];
  while (sent.length) {
    const body = { items: sent.map((item) => ({ upload_id: item.uploadId, external_id: item.path.slice(-255) })) };
    if (name) body.name = name;
    try {
      return await postJson("/v1/batches", body, { "Idempotency-Key": randomKey() });
    } catch (error) {
      const match = error instanceof ApiError && error.message.match(/^items\[(\d+)\]:?\s*(.*)$/);
      const index = match ? Number(match[1]) : -1;
      if (!(index >= 0 && index < sent.length)) throw error;
      const [refused] = sent.splice(index, 1);
      failItem(refused, new ApiError(error.status, error.code, match[2] || error.message));
      renderPicked();
    }
  }
  return null;
}

async function startBatch() {
  const media = state.picked.media.filter((item) => item.status !== "uploaded" || !item.uploadId);
  if (state.uploading || media.length === 0) return;
  state.uploading = true;
  dismissNotice();
  for (const item of media) {
    item.status = "waiting";
    item.error = null;
  }
  renderPicked();
  let refusedKey = null;
  const queue = [...media];
  const worker = async () => {
    while (queue.length && !refusedKey) {
      const item = queue.shift();
      try {
        await uploadItem(item);
      } catch (error) {
        if (keyRefused(error)) refusedKey = error;
        failItem(item, error);
      }
      renderPicked();
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(PARALLEL_UPLOADS, media.length) }, worker));
    if (refusedKey) {
      for (const item of queue) failItem(item, { code: "not_sent", message: "not sent: the key was refused" });
      showNotice(`The API refused the key, so nothing more was sent and no batch was created: ${errorText(refusedKey)}`);
      return;
    }
    const uploaded = state.picked.media.filter((item) => item.status === "uploaded");
    const batch = uploaded.length ? await createBatch(uploaded, $("batch-name").value.trim()) : null;
    const failed = state.picked.media.filter((item) => item.status === "failed");
    if (!batch) {
      showNotice(`No batch was created: none of the ${plural(state.picked.media.length, "file")} was accepted (see each file's error below).`);
      return;
    }
    const skipped = state.picked.skipped.length;
    state.notSent[batch.id] = { failed: failed.map((item) => ({ path: item.path, ...item.error })), skipped };
    const words = [`Batch started with ${plural(batch.jobs_total, "item")}.`];
    if (failed.length) words.push(`${plural(failed.length, "file")} could not be uploaded and ${failed.length === 1 ? "is" : "are"} not in it.`);
    if (skipped) words.push(`${plural(skipped, "other file")} skipped (neither a video nor a photo).`);
    showNotice(words.join(" "), failed.length ? "bad" : "good");
    state.picked = { media: [], skipped: [] };
    $("batch-name").value = "";
    location.hash = `#/batches/${batch.id}`;
  } catch (error) {
    showNotice(`No batch was created: ${errorText(error)}`);
  } finally {
    state.uploading = false;
    renderPicked();
  }
}

// The files a batch started here left out, said on the batch's own page.
function renderNotSent(batchId) {
  const notSent = state.notSent[batchId];
  const box = $("batch-not-sent");
  box.hidden = !notSent || (notSent.failed.length === 0 && notSent.skipped === 0);
  if (box.hidden) {
    box.replaceChildren();
    return;
  }
  box.replaceChildren(...[
    notSent.failed.length ? el("p", {}, `${plural(notSent.failed.length, "file")} could not be uploaded and ${notSent.failed.length === 1 ? "is" : "are"} not in this batch:`) : null,
    notSent.failed.length ? el("ul", {}, ...notSent.failed.map((failure) => el("li", { dataset: { path: failure.path } },
      `${failure.path}: `, el("span", { class: "error-code" }, failure.code), ` ${failure.message}`))) : null,
    notSent.skipped ? el("p", {}, `${plural(notSent.skipped, "other file")} skipped (neither a video nor a photo).`) : null,
  ].filter(Boolean));
}

async function renderBatches() {
  try {
    const page = await apiJson("/v1/batches?limit=50");
    fillRows(
      "batches-body",
      page.items.map((batch) => {
        const shown = batchState(batch);
        return el(
          "tr",
          { dataset: { batchId: batch.id } },
          el("td", {}, el("a", { href: `#/batches/${batch.id}` }, shortId(batch.id))),
          el("td", {}, batch.name || "—"),
          el("td", {}, badge(shown.text, shown.kind)),
          el("td", {}, `${batch.jobs_finished}/${batch.jobs_total}`),
          el("td", { class: "batch-succeeded" }, batch.counts.succeeded),
          el("td", { class: batch.counts.failed ? "batch-failed error-text" : "batch-failed" }, batch.counts.failed),
          el("td", { class: "wide-only" }, when(batch.created_at)),
        );
      }),
    );
    $("batches-empty").hidden = page.items.length > 0;
    showError(null);
  } catch (error) {
    showError(error);
  }
  poll(renderBatches, BATCH_POLL_MS * 2);
}

async function renderBatchJobs(batchId) {
  const text = await (await api(`/v1/batches/${batchId}/results?format=jsonl`)).text();
  const rows = text
    .split("\n")
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line));
  fillRows(
    "batch-jobs-body",
    rows.map((row) =>
      el(
        "tr",
        { dataset: { index: row.index, status: row.status } },
        el("td", {}, row.index),
        el("td", {}, row.job_id ? el("a", { href: `#/jobs/${row.job_id}` }, shortId(row.job_id)) : "—"),
        el("td", {}, row.external_id || "—"),
        el("td", {}, badge(row.status)),
        el("td", {}, row.verdict ? verdictBadge(row.verdict, row.verdict_label) : el("span", { class: "muted" }, "—")),
        el("td", {}, fmt(row.score)),
        el("td", { class: "error-cell" },
          row.error_code ? el("span", { class: "error-code" }, row.error_code) : null,
          row.error_message ? ` ${row.error_message}` : null),
      ),
    ),
  );
}

async function renderBatch(batchId) {
  let batch;
  try {
    batch = await apiJson(`/v1/batches/${batchId}`);
    showError(null);
  } catch (error) {
    showError(error);
    return;
  }
  $("batch-title").textContent = batch.name || `Batch ${shortId(batch.id)}`;
  $("batch-id-text").textContent = batch.id;
  $("batch-progress").value = batch.progress;
  $("batch-progress-text").textContent = `${batch.jobs_finished} of ${batch.jobs_total} ended`;
  const shown = batchState(batch);
  $("batch-status").textContent = shown.text;
  $("batch-status").className = `badge ${shown.kind}`;
  $("batch-status").dataset.status = batch.status;
  for (const [name, value] of Object.entries(batch.counts)) if ($(`count-${name}`)) $(`count-${name}`).textContent = value;
  for (const [name, value] of Object.entries(batch.verdicts)) if ($(`count-${name}`)) $(`count-${name}`).textContent = value;
  $("tile-inconclusive").hidden = !known(batch.verdicts.inconclusive);
  $("batch-eta").textContent = batch.estimated_completion_at
    ? `estimated completion ${when(batch.estimated_completion_at)}`
    : batch.completed_at
      ? `ended ${when(batch.completed_at)}`
      : "";
  for (const name of ["csv", "jsonl", "cancel"]) $(`batch-${name}`).dataset.batchId = batch.id;
  $("batch-jobs-link").href = `#/?batch_id=${batch.id}`;
  renderNotSent(batch.id);
  $("batch-cancel").hidden = batch.status !== "running";
  try {
    await renderBatchJobs(batchId);
  } catch (error) {
    showError(error);
  }
  document.body.dataset.batchLoaded = `${batch.id}:${batch.status}`;
  if (batch.status === "running") poll(() => renderBatch(batchId), BATCH_POLL_MS);
}

async function cancelBatch() {
  const batchId = $("batch-cancel").dataset.batchId;
  if (!batchId) return;
  const ok = window.confirm("Cancel every item of this batch that has not ended? Items already analysed keep their results.");
  if (!ok) return;
  $("batch-cancel").disabled = true;
  try {
    await api(`/v1/batches/${batchId}/cancel`, { method: "POST" });
    showNotice("The batch's remaining items were canceled.", "good");
  } catch (error) {
    showNotice(`The batch could not be canceled: ${errorText(error)}`);
  } finally {
    $("batch-cancel").disabled = false;
  }
  route();
}

async function downloadBatch(format) {
  const batchId = $(`batch-${format}`).dataset.batchId;
  if (!batchId) return;
  try {
    await download(`/v1/batches/${batchId}/results?format=${format}`, `batch-${batchId}.${format}`);
  } catch (error) {
    showNotice(`The ${format.toUpperCase()} export could not be downloaded: ${errorText(error)}`);
  }
}

// --- routing -----------------------------------------------------------------------------------

function route() {
  stopPolling();
  const hash = location.hash.replace(/^#/, "") || "/";
  state.route = `${hash}:${Date.now()}`;
  if (!state.key) {
    showView("nokey");
    return;
  }
  const job = hash.match(/^\/jobs\/([0-9a-f-]{36})$/i);
  const batch = hash.match(/^\/batches\/([0-9a-f-]{36})$/i);
  if (job) {
    showView("job");
    $("job-results").hidden = true;
    $("job-explanation").hidden = true;
    $("job-scale").hidden = true;
    $("job-limits").hidden = true;
    $("job-eta").textContent = "";
    for (const id of ["job-report", "job-cancel", "job-delete"]) $(id).hidden = true;
    $("job-verdict").textContent = "…";
    $("job-verdict").className = "verdict";
    $("job-score").textContent = "";
    renderJob(job[1]);
  } else if (batch) {
    showView("batch");
    renderBatch(batch[1]);
  } else if (hash === "/batches") {
    showView("batches");
    renderPicked();
    renderBatches();
  } else {
    showView("home");
    fillFilterForm(filtersFromHash());
    renderJobs();
  }
}

function start() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value;
    if (key.trim()) useKey(key);
  });
  $("forget-key").addEventListener("click", () => {
    state.key = "";
    sessionStorage.removeItem(KEY_STORAGE);
    renderKeyState();
    route();
  });
  $("upload-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const file = $("upload-file").files[0];
    if (file) upload(file, $("upload-external-id").value.trim());
  });
  $("jobs-more").addEventListener("click", () => loadOlderJobs().catch(showError));
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    applyFilters(filtersFromForm());
  });
  $("filters-clear").addEventListener("click", () => applyFilters(new URLSearchParams()));
  $("batch-files").addEventListener("change", (event) => pickInput(event.currentTarget));
  $("batch-folder").addEventListener("change", (event) => pickInput(event.currentTarget));
  // The whole panel takes the drop: one just beside the zone would open the file in the tab.
  $("batch-new").addEventListener("dragover", (event) => {
    event.preventDefault();
    $("batch-drop").classList.add("over");
  });
  $("batch-new").addEventListener("dragleave", (event) => {
    if (!$("batch-new").contains(event.relatedTarget)) $("batch-drop").classList.remove("over");
  });
  $("batch-new").addEventListener("drop", dropFiles);
  $("batch-files-clear").addEventListener("click", clearPicked);
  $("batch-new-form").addEventListener("submit", (event) => {
    event.preventDefault();
    startBatch();
  });
  $("notice-dismiss").addEventListener("click", dismissNotice);
  $("job-report").addEventListener("click", (event) => downloadReport(event.currentTarget.dataset.jobId));
  $("job-cancel").addEventListener("click", (event) => cancelJob(event.currentTarget.dataset.jobId));
  $("job-delete").addEventListener("click", (event) => deleteJob(event.currentTarget.dataset.jobId));
  $("batch-csv").addEventListener("click", () => downloadBatch("csv"));
  $("batch-jsonl").addEventListener("click", () => downloadBatch("jsonl"));
  $("batch-cancel").addEventListener("click", cancelBatch);
  $("batch-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("batch-id").value.trim();
    if (id) location.hash = `#/batches/${id}`;
  });
  window.addEventListener("hashchange", route);
  // Closing the tab part way through a batch's uploads would leave no batch: ask first.
  window.addEventListener("beforeunload", (event) => {
    if (state.uploading) event.preventDefault();
  });
  renderKeyState();
  route();
}

start();
