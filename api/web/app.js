// The DeepfakeStream page: API key, upload with progress, a live jobs list, a job's results
// (verdict, score over time, suspicious faces with Grad-CAM heatmaps, segments, input statistics)
// and batches with their counts. Plain ES module, no build step; every call goes through the
// public REST API with the key the person entered.

const KEY_STORAGE = "deepfakestream.apiKey";
const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
const JOBS_POLL_MS = 2000;
const JOB_POLL_MS = 1000;
const BATCH_POLL_MS = 2000;
const SVG_NS = "http://www.w3.org/2000/svg";

const state = {
  key: sessionStorage.getItem(KEY_STORAGE) || "",
  timer: null,
  route: null,
  jobsCursor: null,
  olderJobs: [],
  blobUrls: [],
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
  box.textContent = error instanceof ApiError ? `${error.message} (${error.code})` : String(error.message || error);
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fmt(value, digits = 3) {
  return value === null || value === undefined ? "—" : Number(value).toFixed(digits);
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

function shortId(id) {
  return id.slice(0, 8);
}

function verdictText(verdict) {
  return verdict ? verdict.replace("_", " ").toUpperCase() : "—";
}

function badge(text, kind) {
  return el("span", { class: `badge ${kind || text}` }, text);
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
      setProgress(1);
      $("upload-message").textContent = "uploaded; analysis queued";
      $("upload-form").reset();
      location.hash = `#/jobs/${body.id}`;
    } else {
      const error = body && body.error ? body.error : { code: `http_${request.status}`, message: "upload failed" };
      $("upload-message").textContent = "upload refused";
      showError(new ApiError(request.status, error.code, error.message));
    }
  });
  request.addEventListener("error", () => {
    $("upload-button").disabled = false;
    $("upload-message").textContent = "upload failed";
    showError(new Error("the upload did not reach the server"));
  });
  request.send(form);
}

// --- jobs list ---------------------------------------------------------------------------------

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
    el("td", {}, badge(job.status)),
    el("td", {}, progress),
    el("td", {}, job.verdict ? badge(verdictText(job.verdict), job.verdict) : "—"),
    el("td", {}, fmt(job.score)),
    el("td", {}, when(job.created_at)),
  );
}

async function renderJobs() {
  try {
    const page = await apiJson("/v1/jobs?limit=25");
    const jobs = [...page.items, ...state.olderJobs.filter((old) => !page.items.some((j) => j.id === old.id))];
    if (state.jobsCursor === null) state.jobsCursor = page.next_cursor;
    $("jobs-body").replaceChildren(...jobs.map(jobRow));
    $("jobs-empty").hidden = jobs.length > 0;
    $("jobs-more").hidden = !state.jobsCursor;
    $("jobs-updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    showError(null);
  } catch (error) {
    showError(error);
  }
  poll(renderJobs, JOBS_POLL_MS);
}

async function loadOlderJobs() {
  if (!state.jobsCursor) return;
  const page = await apiJson(`/v1/jobs?limit=25&cursor=${encodeURIComponent(state.jobsCursor)}`);
  state.olderJobs.push(...page.items);
  state.jobsCursor = page.next_cursor;
  await renderJobs();
}

// --- one job -----------------------------------------------------------------------------------

function renderJobHead(job) {
  $("job-title").textContent = job.video.filename || job.external_id || `Job ${shortId(job.id)}`;
  $("job-id").textContent = job.id;
  const verdict = $("job-verdict");
  verdict.textContent = TERMINAL.has(job.status) ? verdictText(job.verdict) || job.status : job.status.toUpperCase();
  verdict.className = `verdict ${job.verdict || job.status}`;
  verdict.dataset.verdict = job.verdict || "";
  $("job-score").textContent =
    job.score === null ? "" : `P(fake) ${fmt(job.score)} (threshold ${fmt(job.threshold)})`;
  $("job-status").replaceChildren(badge(job.status));
  const total = job.progress.segments_total || 0;
  $("job-progress").value = total ? job.progress.segments_done / total : 0;
  $("job-progress-text").textContent = total ? `${job.progress.segments_done} of ${total} segments` : "";
  const video = job.video;
  $("job-video").textContent = video.duration_s
    ? `${fmt(video.duration_s, 2)} s, ${video.width}×${video.height}, ${fmt(video.fps, 2)} fps, ${video.codec}`
    : video.filename || "—";
  $("job-model").textContent = job.model ? `${job.model.name} ${job.model.version}` : "—";
  $("job-untrained").hidden = !(job.model && job.model.trained === false);
  $("job-error-row").hidden = !job.error;
  $("job-error").textContent = job.error ? `${job.error.message} (${job.error.code})` : "";
}

function renderChart(job, frames, segments) {
  const width = 760;
  const height = 220;
  const pad = { left: 44, right: 12, top: 12, bottom: 30 };
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
  for (let k = 0; k <= 5; k += 1) {
    const t = (duration * k) / 5;
    add("text", { x: x(t), y: height - 10, "text-anchor": "middle", class: "tick" }).textContent = `${t.toFixed(1)} s`;
  }
  if (job.threshold !== null && job.threshold !== undefined) {
    add("line", { x1: pad.left, x2: pad.left + plotW, y1: y(job.threshold), y2: y(job.threshold), class: "threshold" },
      `threshold ${fmt(job.threshold)}`);
  }
  for (const segment of segments) {
    if (segment.score === null) continue;
    add("line", { x1: x(segment.start_s), x2: x(segment.end_s), y1: y(segment.score), y2: y(segment.score),
      class: "segment-bar" }, `segment ${segment.index}: ${fmt(segment.score)}`);
  }
  let run = [];
  const flush = () => {
    if (run.length > 1) add("polyline", { points: run.join(" "), class: "frame-line" });
    run = [];
  };
  for (const frame of frames) {
    if (frame.score === null) {
      flush();
      continue;
    }
    run.push(`${x(frame.t).toFixed(1)},${y(frame.score).toFixed(1)}`);
    add("circle", { cx: x(frame.t), cy: y(frame.score), r: 3, class: "frame-point" },
      `t=${frame.t.toFixed(2)} s, frame ${frame.index}, P(fake) ${fmt(frame.score)}`);
  }
  flush();
  $("chart").replaceChildren(svg);
}

async function renderFaces(jobId) {
  const { items } = await apiJson(`/v1/jobs/${jobId}/explanations`);
  $("faces-empty").hidden = items.length > 0;
  const figures = [];
  for (const item of items) {
    const [crop, heatmap] = await Promise.all([imageUrl(item.crop_url), imageUrl(item.heatmap_url)]);
    figures.push(
      el(
        "figure",
        { class: "face", dataset: { rank: item.rank, score: item.score } },
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

function renderSegments(segments) {
  $("segments-body").replaceChildren(
    ...segments.map((segment) =>
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

const STATISTIC_LABELS = [
  ["brightness_pct", "brightness", (v) => `${fmt(v, 1)} %`],
  ["histogram_mean", "luma mean", (v) => fmt(v, 1)],
  ["histogram_std", "luma std", (v) => fmt(v, 1)],
  ["sharpness", "sharpness (Laplacian variance)", (v) => fmt(v, 1)],
  ["face_sharpness", "face sharpness", (v) => fmt(v, 1)],
  ["face_size_px", "face size", (v) => `${fmt(v, 0)} px`],
  ["faces_per_frame", "faces per frame", (v) => fmt(v, 2)],
  ["frames_sampled", "frames sampled", (v) => v],
];

async function renderStatistics(jobId) {
  try {
    const statistics = await apiJson(`/v1/jobs/${jobId}/statistics`);
    $("statistics").replaceChildren(
      ...STATISTIC_LABELS.map(([name, label, show]) =>
        el("tr", {}, el("th", {}, label), el("td", { dataset: { statistic: name } }, show(statistics.input[name]))),
      ),
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
  if (job.status !== "succeeded") {
    $("job-results").hidden = true;
    return;
  }
  try {
    const [segments, frames] = await Promise.all([
      allPages(`/v1/jobs/${jobId}/segments?limit=500`),
      allPages(`/v1/jobs/${jobId}/frames?limit=500`),
    ]);
    renderChart(job, frames, segments);
    renderSegments(segments);
    releaseBlobs();
    await Promise.all([renderFaces(jobId), renderStatistics(jobId)]);
    $("job-results").hidden = false;
    document.body.dataset.jobLoaded = jobId;
  } catch (error) {
    showError(error);
  }
}

// --- batches -----------------------------------------------------------------------------------

async function renderBatches() {
  try {
    const page = await apiJson("/v1/batches?limit=50");
    $("batches-body").replaceChildren(
      ...page.items.map((batch) =>
        el(
          "tr",
          {},
          el("td", {}, el("a", { href: `#/batches/${batch.id}` }, shortId(batch.id))),
          el("td", {}, batch.name || "—"),
          el("td", {}, badge(batch.status)),
          el("td", {}, `${Math.round(batch.progress * 100)} %`),
          el("td", {}, `${batch.jobs_finished}/${batch.jobs_total}`),
          el("td", {}, when(batch.created_at)),
        ),
      ),
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
  $("batch-jobs-body").replaceChildren(
    ...rows.map((row) =>
      el(
        "tr",
        {},
        el("td", {}, row.job_id ? el("a", { href: `#/jobs/${row.job_id}` }, shortId(row.job_id)) : "—"),
        el("td", {}, row.external_id || "—"),
        el("td", {}, badge(row.status)),
        el("td", {}, row.verdict ? badge(verdictText(row.verdict), row.verdict) : "—"),
        el("td", {}, fmt(row.score)),
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
  $("batch-status").textContent = batch.status;
  $("batch-status").className = `badge ${batch.status}`;
  for (const [name, value] of Object.entries(batch.counts)) $(`count-${name}`).textContent = value;
  for (const [name, value] of Object.entries(batch.verdicts)) $(`count-${name}`).textContent = value;
  $("batch-eta").textContent = batch.estimated_completion_at
    ? `estimated completion ${when(batch.estimated_completion_at)}`
    : batch.completed_at
      ? `completed ${when(batch.completed_at)}`
      : "";
  try {
    await renderBatchJobs(batchId);
  } catch (error) {
    showError(error);
  }
  if (batch.status === "running") poll(() => renderBatch(batchId), BATCH_POLL_MS);
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
    $("job-verdict").textContent = "…";
    renderJob(job[1]);
  } else if (batch) {
    showView("batch");
    renderBatch(batch[1]);
  } else if (hash === "/batches") {
    showView("batches");
    renderBatches();
  } else {
    showView("home");
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
  $("batch-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("batch-id").value.trim();
    if (id) location.hash = `#/batches/${id}`;
  });
  window.addEventListener("hashchange", route);
  renderKeyState();
  route();
}

start();
