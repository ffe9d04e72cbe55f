// The DeepfakeStream page: API key, upload with progress, a live jobs list, a job's results
// (verdict in plain words with its probability and band, score over time, suspicious faces with
// Grad-CAM heatmaps, segments, input statistics, report download, cancel and delete) and batches
// with their counts, items and exports. Plain ES module, no build step; every call goes through
// the public REST API with the key the person entered.

const KEY_STORAGE = "deepfakestream.apiKey";
const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
const JOBS_POLL_MS = 2000;
const JOB_POLL_MS = 1000;
const BATCH_POLL_MS = 2000;
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
  jobsCursor: null,
  olderJobs: [],
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

async function renderJobs() {
  try {
    const page = await apiJson("/v1/jobs?limit=25");
    const jobs = [...page.items, ...state.olderJobs.filter((old) => !page.items.some((j) => j.id === old.id))];
    if (state.jobsCursor === null) state.jobsCursor = page.next_cursor;
    fillRows("jobs-body", jobs.map(jobRow));
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
  renderKeyState();
  route();
}

start();
