// medkit serve: the page. Plain JavaScript, no library, nothing fetched but this server's own API.
"use strict";

const $ = (id) => document.getElementById(id);
let bundles = [];
let frames = [];
let lastResult = null;

function currentBundle() {
  return bundles.find((b) => b.name === $("bundle").value);
}

function showBundle() {
  const b = currentBundle();
  if (!b) return;
  $("bundle-info").textContent = `${b.task}: ${b.labels.join(" / ")} (version ${b.version})`;
  $("accepts").textContent = `Takes: ${b.accepts}; ${b.inputs.join(", ")}.`;
}

async function loadBundles() {
  const response = await fetch("/api/bundles");
  const data = await response.json();
  bundles = data.bundles;
  $("notice").textContent = data.notice;
  for (const b of bundles) {
    const option = document.createElement("option");
    option.value = b.name;
    option.textContent = b.name;
    $("bundle").appendChild(option);
  }
  showBundle();
}

function setStatus(text) { $("status").textContent = text; }
function setError(text) { $("error").textContent = text || ""; }

// the frames the slider walks: every slice of every input (a volume gives several)
function buildFrames(result) {
  const out = [];
  result.items.forEach((item, index) => {
    const count = Math.max(item.images.length, 1);
    for (let k = 0; k < count; k++) out.push({ item, index, k, count });
  });
  return out;
}

function bar(name, p, top) {
  const row = document.createElement("div");
  row.className = "bar" + (top ? " top" : "");
  const label = document.createElement("span");
  label.textContent = name;
  const track = document.createElement("div");
  track.className = "track";
  const fill = document.createElement("div");
  fill.className = "fill";
  fill.style.width = `${Math.round((p || 0) * 1000) / 10}%`;
  track.appendChild(fill);
  const value = document.createElement("span");
  value.textContent = p === null || p === undefined ? "" : p.toFixed(3);
  row.append(label, track, value);
  return row;
}

function showFrame(i) {
  const frame = frames[i];
  if (!frame) return;
  const { item, k, count } = frame;
  $("slice-label").textContent = count > 1 ? `${k + 1} of ${count} (${item.name})` : `${frame.index + 1} of ${lastResult.items.length}`;
  $("item-name").textContent = item.name + (item.error ? "" : "");
  $("verdict").textContent = item.error ? "not read" : item.label;
  setError(item.error);
  $("image").src = item.images[k] || "";
  const overlay = item.overlays[Math.min(k, item.overlays.length - 1)];
  $("overlay-figure").hidden = !overlay;
  $("overlay").src = overlay || "";
  $("overlay-caption").textContent = lastResult.task === "segmentation" ? "Predicted mask outline (red)" : "Grad-CAM heat map of the predicted class";
  const bars = $("bars");
  bars.replaceChildren();
  const entries = Object.entries(item.probabilities || {});
  const best = Math.max(...entries.map(([, p]) => p || 0));
  for (const [name, p] of entries) bars.appendChild(bar(name, p, p === best));
  const details = [];
  if (item.stack_probability !== undefined) details.push(`mean over neighbouring slices: ${item.stack_probability.toFixed(3)}`);
  if (item.tumour_pixels !== undefined) details.push(`tumour pixels: ${item.tumour_pixels}`);
  if (item.tumour_area_mm2 !== undefined && item.tumour_area_mm2 !== null) details.push(`area: ${item.tumour_area_mm2} mm²`);
  if (lastResult.threshold !== null && lastResult.threshold !== undefined) details.push(`decision threshold: ${lastResult.threshold}`);
  $("details").textContent = details.join("; ");
  const mask = $("download-mask");
  mask.hidden = !item.mask;
  if (item.mask) mask.href = item.mask;
  const ov = $("download-overlay");
  ov.hidden = !overlay;
  if (overlay) ov.href = overlay;
}

function showResult(result) {
  lastResult = result;
  frames = buildFrames(result);
  $("result").hidden = false;
  $("download-csv").href = "data:text/csv;charset=utf-8," + encodeURIComponent(result.csv);
  const slider = $("slider");
  slider.max = String(Math.max(frames.length - 1, 0));
  slider.value = "0";
  $("slider-box").hidden = frames.length < 2;
  showFrame(0);
  const failed = result.n_failed ? `, ${result.n_failed} not read` : "";
  setStatus(`${result.items.length} input(s) predicted by ${result.bundle} in ${result.seconds} s${failed}.`);
}

async function predict(file) {
  const b = currentBundle();
  if (!b || !file) return;
  setError("");
  setStatus(`Uploading ${file.name} to ${b.name}...`);
  $("result").hidden = true;
  const form = new FormData();
  form.append("file", file, file.name);
  const url = `/api/predict/${encodeURIComponent(b.name)}` + (b.explains ? "?explain=true" : "");
  try {
    const response = await fetch(url, { method: "POST", body: form });
    const data = await response.json();
    if (!response.ok) {
      setStatus("");
      setError(data.error || `error ${response.status}`);
      return;
    }
    showResult(data);
  } catch (e) {
    setStatus("");
    setError(`the server did not answer (${e})`);
  }
}

function wire() {
  $("bundle").addEventListener("change", showBundle);
  $("file").addEventListener("change", (e) => predict(e.target.files[0]));
  $("slider").addEventListener("input", (e) => showFrame(Number(e.target.value)));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) predict(e.dataTransfer.files[0]);
  });
}

wire();
loadBundles().catch((e) => setError(`cannot list the models (${e})`));
