// PillSnap web page: pick or take a photo, POST it to /predict, draw the boxes and list the
// candidates. The API key lives in this page's memory, or in localStorage when the user
// ticks "remember"; it is sent only to this server, in the X-API-Key header.
"use strict";

const KEY_STORE = "pillsnap.apiKey";
const COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#008080"];
const $ = (id) => document.getElementById(id);
let photo = null; // the chosen File

function loadKey() {
  const saved = window.localStorage.getItem(KEY_STORE);
  if (saved) {
    $("api-key").value = saved;
    $("remember-key").checked = true;
  }
}

function keepKey() {
  if ($("remember-key").checked) {
    window.localStorage.setItem(KEY_STORE, $("api-key").value);
  } else {
    window.localStorage.removeItem(KEY_STORE);
  }
}

function choose(event) {
  photo = event.target.files[0] || null;
  $("file-name").textContent = photo ? photo.name : "no photo yet";
  $("identify").disabled = !photo;
  if (photo) showStatus("idle", "Ready: press Identify.");
}

function showStatus(state, text, isError = false) {
  $("results").dataset.state = state;
  const status = $("status");
  status.textContent = text;
  status.className = isError ? "error" : "hint";
}

async function identify() {
  keepKey();
  const pipeline = document.querySelector("input[name=pipeline]:checked").value;
  const form = new FormData();
  form.append("image", photo, photo.name);
  showStatus("loading", "Identifying...");
  $("pills").replaceChildren();
  $("identify").disabled = true;
  try {
    const response = await fetch(`/predict?pipeline=${pipeline}`, {
      method: "POST", body: form, headers: { "X-API-Key": $("api-key").value },
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = typeof body.detail === "string" ? body.detail : response.statusText;
      showStatus("error", `Error ${response.status}: ${detail}`, true);
      return;
    }
    await render(body);
  } catch (err) {
    showStatus("error", `The server cannot be reached: ${err.message}`, true);
  } finally {
    $("identify").disabled = !photo;
  }
}

async function render(answer) {
  await drawPhoto(answer);
  const list = $("pills");
  answer.pills.forEach((pill, i) => list.append(pillItem(pill, i)));
  let text = answer.pills.length
    ? `${answer.pills.length} pill(s), ${answer.pipeline} pipeline, ` +
      `${Math.round(answer.timing_ms.total)} ms`
    : `No pill: ${answer.reason || "nothing found"}.`;
  if (answer.recommend_combo) text += " Several pills seen: try the combo pipeline.";
  showStatus("done", text);
}

async function drawPhoto(answer) {
  const canvas = $("view");
  // the browser applies EXIF orientation, as the server does, so boxes line up
  const bitmap = await createImageBitmap(photo, { imageOrientation: "from-image" });
  const width = answer.image ? answer.image.width : bitmap.width;
  const height = answer.image ? answer.image.height : bitmap.height;
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0, width, height);
  const line = Math.max(2, Math.round(Math.min(width, height) / 150));
  answer.pills.forEach((pill, i) => {
    if (!pill.bbox) return;
    const [x0, y0, x1, y1] = pill.bbox;
    ctx.strokeStyle = ctx.fillStyle = COLOURS[i % COLOURS.length];
    ctx.lineWidth = line;
    ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    ctx.font = `${line * 8}px sans-serif`;
    ctx.fillText(String(i + 1), x0 + line, y0 + line * 8);
  });
}

function pillItem(pill, i) {
  const item = document.createElement("li");
  item.className = "pill";
  const top = pill.top1;
  const title = document.createElement("strong");
  // an unknown pill is not named: its candidates are only the nearest drugs the model knows
  title.textContent = pill.unknown
    ? "Unknown drug: not one the model was trained on"
    : `${drugName(top)} (${percent(top.confidence)})`;
  title.style.color = pill.bbox ? COLOURS[i % COLOURS.length] : "";
  item.append(title);
  if (pill.unknown) {
    const badge = document.createElement("span");
    badge.className = "badge unknown";
    badge.textContent = "unknown";
    item.append(badge);
    const note = document.createElement("p");
    note.className = "note";
    note.textContent = "Closest known drugs (not an identification):";
    item.append(note);
  } else if (pill.low_confidence) {
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = "low confidence";
    item.append(badge);
  }
  const table = document.createElement("table");
  table.innerHTML = "<thead><tr><th>name</th><th>K-code</th><th>EDI</th><th>company</th>" +
    "<th>imprint</th><th>confidence</th></tr></thead>";
  const body = document.createElement("tbody");
  for (const c of pill.candidates) {
    const row = body.insertRow();
    row.className = "candidate";
    const imprint = [c.imprints?.front, c.imprints?.back].filter(Boolean).join(" / ");
    for (const text of [drugName(c), c.k_code, c.edi_code || "-",
                        c.company?.ko || c.company?.en || "-", imprint || "-"]) {
      row.insertCell().textContent = text;
    }
    const conf = row.insertCell();
    conf.className = "num";
    conf.textContent = percent(c.confidence);
  }
  table.append(body);
  item.append(table);
  // look-alikes of the top-1 that hold a real share: what a pharmacist should check
  for (const twin of pill.near_twins || []) {
    const note = document.createElement("p");
    note.className = "note twin";
    note.textContent = `Looks like ${drugName(twin)} (${percent(twin.confidence)}): ` +
      (twin.differs_by.length ? `check ${twin.differs_by.join("; ")}` : "same look in the table");
    item.append(note);
  }
  return item;
}

function drugName(c) {
  const ko = c.name?.ko, en = c.name?.en;
  if (ko && en) return `${ko} · ${en}`;
  return ko || en || c.k_code;
}

function percent(p) {
  return `${(100 * p).toFixed(1)}%`;
}

document.addEventListener("DOMContentLoaded", () => {
  loadKey();
  $("pick").addEventListener("change", choose);
  $("camera").addEventListener("change", choose);
  $("remember-key").addEventListener("change", keepKey);
  $("identify").addEventListener("click", identify);
});
