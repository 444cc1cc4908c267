"use strict";
// The reviewer workbench: queue and held items, the upload with its score charts, evidence, decision.
const REFRESH_MS = 5000;  // the queue, "mine" and the open item reload this often
const WARN_S = 60;  // a lease this close to its end is shown as a warning
const W = 760, L = 40, R = 110;  // chart geometry (viewBox units): plot spans L..W-R
const COLOURS = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#e377c2"];  // not the thresholds' red and orange
let key = sessionStorage.getItem("apiKey") || "";
let settings = null;  // who I am, thresholds, preset reasons
let current = null;  // the item open: its detail, and whether I hold it
let mine = [];  // items I hold
let chosen = null;  // the label picked, submitted by Ctrl+Enter
let player = null;  // the <video>, <audio> or <img> of the open item
let looping = null;  // a voice window played over and over ({start, end}), or null
let renewedAt = 0;  // when the leases I hold were last renewed (seconds)
// drafts and playheads are kept per item in this tab's session, so a reload or another item loses neither
const kept = (kind, id) => `${kind}:${id}`;
const keep = (kind, id, value) => value === null || value === "" ? sessionStorage.removeItem(kept(kind, id))
  : sessionStorage.setItem(kept(kind, id), value);
const $ = (id) => document.getElementById(id);
const say = (msg) => { $("status").textContent = msg; };
const el = (tag, props = {}, ...kids) => { const e = Object.assign(document.createElement(tag), props); e.append(...kids); return e; };
const svg = (tag, attrs, text) => {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
};
const now = () => Date.now() / 1000;
const secs = (iso) => Date.parse(iso) / 1000;  // the API's times are ISO 8601
const clock = (s) => `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;
const age = (t) => { const s = now() - t; return s < 60 ? `${Math.round(s)} s` : s < 3600 ? `${Math.round(s / 60)} min` : s < 86400 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86400)} d`; };
const described = (m) => Object.entries(m || {}).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
// blue (0) through grey to orange (1): told apart without red-green vision
const heat = (p) => p === null ? "#ccc" : p < 0.5 ? `hsl(210 65% ${Math.round(32 + 110 * p)}%)` : `hsl(28 90% ${Math.round(142 - 110 * p)}%)`;

async function api(path, options = {}) {
  const r = await fetch(path, {...options, headers: {...(options.headers || {}), "X-API-Key": key}});
  if (r.status === 204) return null;
  const body = r.headers.get("content-type")?.includes("json") ? await r.json() : await r.blob();
  if (!r.ok) throw new Error(`${r.status}: ${body.detail || body.error || "error"}`);
  return body;
}
const FILTERS = ["media_type", "decision", "channel", "waited_min"];  // the queue's, kept for this tab
const filtered = () => new URLSearchParams(FILTERS.map((f) => [f, $(`f-${f}`).value.trim()]).filter(([, v]) => v)).toString();
const post = (path, body) => api(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});

// queue and held items

function queueRow(it) {
  const meta = described(it.metadata);
  const tr = el("tr", {className: "item", title: `open item #${it.id} (read-only until claimed)`},
    el("td", {className: it.kind === "detection" ? "" : "appeal", textContent: it.kind === "detection" ? it.id : `${it.id} ${it.kind}`}),
    el("td", {textContent: age(secs(it.uploaded_at))}), el("td", {textContent: it.filename || it.upload_id.slice(0, 8), title: it.upload_id}),
    el("td", {textContent: it.media_type}), el("td", {textContent: it.decision ?? "-"}),
    el("td", {textContent: it.score?.toFixed(3) ?? "-"}),
    el("td", {className: "meta", textContent: Object.values(it.metadata || {}).join(", "), title: meta}));  // values fit; the title names them
  return openable(tr, it.id);
}

function openable(tr, id) {  // a row opens its item on a click, or on Enter once Tab reached it
  tr.dataset.id = id;
  tr.tabIndex = 0;
  tr.onclick = () => open(id).catch((e) => say(e.message));
  tr.onkeydown = (ev) => { if (ev.key === "Enter") { ev.preventDefault(); ev.stopPropagation(); tr.onclick(); } };
  return tr;
}

function mineRow(it) {
  const release = el("button", {textContent: "Release", onclick: (ev) => { ev.stopPropagation(); releaseItem(it); }});
  const tr = el("tr", {className: "item"}, el("td", {textContent: it.id}),
    el("td", {textContent: it.filename || it.upload_id.slice(0, 8)}), el("td", {className: "lease"}), el("td", {}, release));
  tr.dataset.until = secs(it.lease_until);
  return openable(tr, it.id);
}

function recentRow(it) {
  const tr = el("tr", {className: "item", title: `reopen item #${it.id} to amend your decision`}, el("td", {textContent: it.id}),
    el("td", {textContent: it.filename || it.upload_id.slice(0, 8)}), el("td", {textContent: it.label}));
  return openable(tr, it.id);
}

async function refresh() {
  const open = current?.detail.item.id;
  const [pending, held, decided, item] = await Promise.all([api(`/v1/review/items?state=pending&${filtered()}`),
    api("/v1/review/items?state=claimed&mine=true"), api("/v1/review/items?state=decided&mine=true&limit=500"),
    open ? api(`/v1/review/items/${open}`) : null]);
  mine = held;
  $("queue").replaceChildren(...pending.map(queueRow));
  $("mine").replaceChildren(...held.map(mineRow));
  const recent = decided.filter(amendable).sort((a, b) => secs(b.decided_at) - secs(a.decided_at));
  $("recent").replaceChildren(...recent.map(recentRow));
  $("count").textContent = `${pending.length} pending`;
  $("mine-count").textContent = `(${held.length} held)`;
  if (item && current?.detail.item.id === open) updateItem(item.item);  // someone else may have claimed or decided it
  markOpen();
  tick();
  if (document.visibilityState === "visible" && now() - renewedAt > settings.lease_s / 3) await renewAll();
}

const leased = (item) => item.state === "claimed" && secs(item.lease_until) > now();
const holds = (item) => leased(item) && item.reviewer === settings.reviewer;
const claimable = (item) => item.state === "pending" || (item.state === "claimed" && !leased(item));
// my own decision, recent enough to change (the server also refuses one an escalation or appeal came of)
const amendable = (item) => item.state === "decided" && item.reviewer === settings.reviewer && item.label !== "escalated"
  && now() - secs(item.decided_at) < settings.amend_s;

function stateOf(item) {  // what the open item is now, in words
  if (item.state === "decided") return `decided: ${item.label} by ${item.reviewer}`;
  if (leased(item)) return item.reviewer === settings.reviewer ? "yours" : `claimed by ${item.reviewer}`;
  return "pending";
}

function updateItem(item) {  // the open item as the server has it now
  current.detail.item = {...current.detail.item, ...item};
  $("item-state").textContent = `read-only, ${stateOf(item)}`;
  $("claim-this").disabled = !claimable(item);
  const may = holds(item) || (current.amend && amendable(item));  // an amendment's window may close meanwhile
  if (current.held !== may) setHeld(may);
}

async function renewAll() {  // while this page is visible, the leases I hold do not run out
  renewedAt = now();
  for (const it of mine) {
    try {
      const item = await post(`/v1/review/items/${it.id}/renew`, {version: it.version});
      it.lease_until = item.lease_until;
      if (current?.detail.item.id === it.id) updateItem(item);
    } catch (e) { say(`item #${it.id}: lease not renewed (${e.message})`); }
  }
  for (const tr of $("mine").children) tr.dataset.until = secs(mine.find((it) => it.id === +tr.dataset.id)?.lease_until ?? 0);
}

function tick() {  // lease countdowns, each second
  for (const tr of $("mine").children) tr.querySelector(".lease").textContent = clock(Math.max(0, tr.dataset.until - now()));
  if (current?.held) {
    const left = secs(current.detail.item.lease_until) - now();
    $("lease").textContent = left > 0 ? `lease ${clock(left)}` : "lease expired";
    $("lease").classList.toggle("warn", left < WARN_S);
    if (left <= 0) {
      setHeld(false);
      $("item-state").textContent = "read-only, your lease ran out";
      say(`item #${current.detail.item.id}: your lease ran out`);
    }
  }
}

function markOpen() {
  for (const tr of document.querySelectorAll("tr.item")) tr.classList.toggle("open", +tr.dataset.id === current?.detail.item.id);
}

// the open item

async function open(id) { await show(await api(`/v1/review/items/${id}`)); }

const isOpen = (upload) => current?.detail.upload.id === upload.id;  // still on screen when a load ends: not a closed item's

function setHeld(held) {
  current.held = held;
  $("readonly").classList.toggle("hidden", held);
  $("lease").classList.toggle("hidden", !held);
  for (const b of document.querySelectorAll("footer button")) b.disabled = !held;
  $("reason").disabled = !held;
}

async function show(detail) {
  const {item, upload, evidence} = detail;
  const amend = amendable(item);
  const held = holds(item) || amend;  // an amendment decides again, as a claim does
  current = {detail, held, amend};
  chosen = null;
  $("reason").value = sessionStorage.getItem(kept("draft", item.id)) || (amend ? item.reason : "");  // this item's draft, no other's
  history.replaceState(null, "", `#item=${item.id}`);  // a reload opens it again
  $("item-state").textContent = `read-only, ${stateOf(item)}`;
  $("claim-this").disabled = !claimable(item);
  document.body.dataset.media = upload.media_type;
  $("detail").classList.remove("hidden");
  $("item-id").textContent = `#${item.id}`;
  $("item-kind").textContent = item.kind === "detection" ? "" : `(${item.kind})`;
  $("file-name").textContent = item.filename || upload.id;
  $("media-type").textContent = upload.media_type;
  $("model-decision").textContent = upload.verdict?.decision ?? "-";
  $("model-score").textContent = upload.verdict?.score?.toFixed(3) ?? "-";
  $("why").textContent = why(upload.verdict);
  $("models").textContent = modelsOf(upload.verdict);
  $("metadata").textContent = described(upload.metadata) || "no metadata";
  $("provenance").textContent = provenance(upload.verdict);
  const {appeal, escalation} = detail;
  $("appeal").classList.toggle("hidden", !appeal && !escalation);
  $("detection-buttons").classList.toggle("hidden", !!appeal);
  $("appeal-buttons").classList.toggle("hidden", !appeal);
  document.querySelector("button[data-label=escalated]").classList.toggle("hidden", !!escalation || amend);  // the last word
  if (appeal) {
    const d = appeal.first_decision;
    $("appeal").textContent = `Appeal: "${appeal.reason}". First decision: ${d.label} by ${d.reviewer}, "${d.reason}".`;
  } else if (escalation) {
    $("appeal").textContent = `Escalated by ${escalation.by}: "${escalation.note}". Your decision is final.`;
  }
  document.querySelectorAll("button[data-label]").forEach((b) => b.setAttribute("aria-pressed", "false"));
  setHeld(held);
  tick();
  markOpen();
  if (amend) say(`item #${item.id}: you decided ${item.label}; choose again to amend (audited)`);
  await Promise.all([showMedia(upload), showEvidence(evidence, upload), showSound(upload)]);
}

function why(verdict) {  // each model's score against its own thresholds: which one flagged the upload
  const names = {visual: "face", audio: "voice"};
  return (verdict?.models || []).filter(({modality}) => verdict[modality]).map(({modality, thresholds: t}) => {  // not read: left out
    const s = verdict[modality].score;
    if (s === null) return `${names[modality]}: ${modality === "audio" ? "no speech" : "no face"}`;
    const [cmp, cut, at] = s >= t.likely_fake ? [">=", "likely fake", t.likely_fake] : [s >= t.review ? ">=" : "<", "review", t.review];
    return `${names[modality]} ${s.toFixed(3)} ${cmp} ${cut} ${at.toFixed(3)}`;
  }).join(" · ");
}

function modelsOf(verdict) {  // which model versions decided: a switch of models shows here
  const names = {visual: "face", audio: "voice"};
  const used = (verdict?.models || []).map(({modality, name, version}) => `${names[modality]} ${name}@${version}`);
  return used.length ? `decided by ${used.join(", ")}` : "no model";
}

function provenance(verdict) {
  const p = verdict?.provenance;
  if (!p) return "no C2PA manifest";
  return `C2PA manifest: ${p.state}` + (p.declared_ai ? ", declares AI-generated media" : "") +
    (p.claim_generator ? `, made with ${p.claim_generator}` : "") + (p.signer ? `, signed by ${p.signer}` : "") +
    (p.failures.length ? ` (${p.failures.join(", ")})` : "") +
    (verdict.decided_by === "provenance" ? ". The manifest, not the models, set this decision." : "");
}

async function showMedia(upload) {
  const tag = {video: "video", audio: "audio", image: "img"}[upload.media_type];
  player = el(tag, {id: "player"});
  $("speed").textContent = "1x";
  const boxes = svg("svg", {id: "boxes"});
  $("stage").replaceChildren(player, boxes);
  if (tag !== "img") Object.assign(player, {controls: true, preload: "auto"});
  const id = current.detail.item.id;
  const update = () => { drawPlayhead(); drawBoxes(upload.verdict); };
  for (const ev of ["timeupdate", "seeked", "loadedmetadata", "load"]) player.addEventListener(ev, update);
  looping = null;
  player.addEventListener("timeupdate", () => { if (looping && player.currentTime >= looping.end) seek(looping.start); });
  player.addEventListener("loadedmetadata", () => {
    drawCharts(upload.verdict);
    const at = +sessionStorage.getItem(kept("playhead", id));
    if (at) seek(at);  // where the reviewer was before a reload (kept on pagehide, below)
  });
  drawCharts(upload.verdict);
  try {
    player.src = (await api(`/v1/review/media/${upload.id}/link`)).url;  // plays with Range, no key header
  } catch (e) { if (isOpen(upload)) say(`media: ${e.message}`); }
}

function flaggedBy(verdict) {  // the models whose score reached their own review threshold
  return new Set((verdict?.models || []).filter(({modality, thresholds}) => (verdict[modality]?.score ?? -1) >= thresholds.review)
    .map(({modality}) => modality));
}

function voiceMoment(s) {  // a voice window as evidence: its time and score; a click seeks there
  const caption = `${s.start.toFixed(1)}-${s.end.toFixed(1)} s · ${s.score.toFixed(3)} · voice`;
  const fig = el("figure", {className: "evidence voice-moment", tabIndex: 0, title: "seek here and play"},
    el("div", {className: "wave", style: `background:${heat(s.score)}`}), el("figcaption", {textContent: caption}));
  fig.onclick = () => { looping = s; seek(s.start); player.play(); say(`looping ${caption}: l or Space stops`); };
  fig.onkeydown = (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); ev.stopPropagation(); fig.onclick(); } };
  return fig;
}

function showEvidence(evidence, upload) {  // from the model that flagged the upload: face crops, voice windows, or both
  const verdict = upload.verdict, by = flaggedBy(verdict);
  const voice = by.has("audio") ? (verdict.audio.segments || []).filter((s) => s.score !== null)
    .sort((a, b) => b.score - a.score).slice(0, 4).sort((a, b) => a.start - b.start).map(voiceMoment) : [];
  const faces = by.has("visual") || !voice.length ? evidence : [];
  return Promise.all([...faces].sort((a, b) => a.t - b.t).map(async (e) => {
    const img = el("img", {alt: `face ${e.track + 1} at ${e.t} s`});
    img.src = URL.createObjectURL(await api(e.url));  // evidence needs the key: fetched, not linked
    const caption = `${e.t.toFixed(1)} s · ${e.score.toFixed(3)} · face ${e.track + 1}`;
    const fig = el("figure", {className: "evidence", tabIndex: 0, title: "enlarge and seek here"}, img, el("figcaption", {textContent: caption}));
    fig.onclick = () => enlarge(e, caption, img.src);
    fig.onkeydown = (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); ev.stopPropagation(); fig.onclick(); } };
    return fig;
  })).then((figs) => isOpen(upload) && $("evidence").replaceChildren(...voice, ...figs));
}

async function enlarge(e, caption, cropSrc) {
  const img = $("zoom").querySelector("img");
  img.src = e.frame_url ? URL.createObjectURL(await api(e.frame_url)) : cropSrc;
  img.alt = `frame at ${e.t} s, face boxed`;
  $("zoom-caption").textContent = caption;
  $("zoom").showModal();
  seek(e.t);
}

// charts: time axis in seconds, score 0-1, thresholds, one line per face track, voice segments

function duration(verdict) {
  const ts = [...(verdict?.visual?.faces || []).flatMap((f) => f.frames.map((x) => x.t)),
    ...(verdict?.audio?.segments || []).map((s) => s.end)];
  return (player && isFinite(player.duration) && player.duration) || Math.max(1, ...ts);
}
const xOf = (t, end) => L + (t / end) * (W - L - R);

function timeAxis(g, end, y) {
  const step = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600].find((s) => end / s <= 10) || 1200;
  for (let t = 0; t <= end + 1e-9; t += step) {
    g.append(svg("line", {x1: xOf(t, end), x2: xOf(t, end), y1: y, y2: y + 4, stroke: "#666"}),
      svg("text", {x: xOf(t, end), y: y + 14, "text-anchor": "middle", class: "tick-x"}, `${+t.toFixed(1)} s`));
  }
  g.append(svg("line", {x1: L, x2: W - R, y1: y, y2: y, stroke: "#666"}));
}

function series(verdict) {
  if (verdict?.media_type === "audio") {
    const voiced = (verdict.audio?.segments || []).filter((s) => s.score !== null);
    return [{name: "voice", points: voiced.map((s) => ({t: (s.start + s.end) / 2, score: s.score}))}];
  }
  return (verdict?.visual?.faces || []).map((f) => ({name: `face ${f.track + 1} (${f.score.toFixed(3)})`, points: f.frames}));
}

function yRange(lines, thresholds) {  // the score axis zoomed around what is drawn: the scores and the thresholds
  const vs = [...lines.flatMap((s) => s.points.map((p) => p.score)), ...Object.values(thresholds)];
  if (!vs.length) return [0, 1];
  const lo = Math.min(...vs), hi = Math.max(...vs), pad = Math.max(0.05, (hi - lo) * 0.1);
  return [Math.max(0, lo - pad), Math.min(1, hi + pad)];
}

function drawCharts(verdict) {
  const end = duration(verdict), top = 8, bottom = 148;
  const thresholds = settings.thresholds[verdict?.media_type === "audio" ? "audio" : "visual"] || {};
  const lines = series(verdict);
  const [lo, hi] = yRange(lines, thresholds);
  const yOf = (p) => bottom - ((p - lo) / (hi - lo)) * (bottom - top);
  const chart = $("timeline");
  chart.replaceChildren();
  for (let i = 0; i <= 4; i++) {
    const p = lo + (i / 4) * (hi - lo);
    chart.append(svg("line", {x1: L, x2: W - R, y1: yOf(p), y2: yOf(p), stroke: "#eee"}),
      svg("text", {x: L - 4, y: yOf(p) + 4, "text-anchor": "end", class: "tick-y"}, p.toFixed(hi - lo < 0.4 ? 3 : 2)));
  }
  chart.append(svg("text", {x: 10, y: (top + bottom) / 2, transform: `rotate(-90 10 ${(top + bottom) / 2})`, "text-anchor": "middle"}, "score"));
  timeAxis(chart, end, bottom);
  let labelY = -Infinity;  // equal thresholds: labels one under the other
  for (const [name, t] of Object.entries(thresholds)) {
    labelY = Math.max(yOf(t) + 4, labelY + 13);
    chart.append(svg("line", {x1: L, x2: W - R, y1: yOf(t), y2: yOf(t), stroke: name === "likely_fake" ? "#c00" : "#e90",
      "stroke-dasharray": "5 3", class: "threshold"}),
      svg("text", {x: W - R + 4, y: labelY, class: "threshold-label"}, `${name.replace("_", " ")} ${t.toFixed(3)}`));
  }
  lines.forEach((s, i) => {
    const pts = s.points.map((p) => `${xOf(p.t, end)},${yOf(p.score)}`).join(" ");
    chart.append(svg("polyline", {class: "track", fill: "none", stroke: COLOURS[i % COLOURS.length], "stroke-width": 2, points: pts}));
    s.points.forEach((p) => chart.append(svg("circle", {cx: xOf(p.t, end), cy: yOf(p.score), r: 2.5, fill: COLOURS[i % COLOURS.length]})));
  });
  $("legend").replaceChildren(...lines.map((s, i) => el("span", {className: "legend-item"},
    el("i", {style: `background:${COLOURS[i % COLOURS.length]}`}), s.name)),
    el("span", {}, el("i", {style: "background:#c00"}), "likely_fake threshold"), el("span", {}, el("i", {style: "background:#e90"}), "review threshold"),
    el("span", {className: "meta", textContent: lines.length ? "click a chart to seek" : "no face found"}));
  drawVoice(verdict, end);
  drawPlayhead();
}

async function showSound(upload) {  // waveform over spectrogram, drawn by the server on the charts' time axis
  const img = $("sound");
  img.classList.add("hidden");
  if (upload.media_type === "image" || !upload.verdict?.audio?.segments?.length) return;
  const picture = await api(`/v1/review/media/${upload.id}/sound.png`).catch(() => null);
  if (!isOpen(upload) || !picture) return;
  img.src = URL.createObjectURL(picture);
  img.classList.remove("hidden");
}

function drawVoice(verdict, end) {
  const segs = verdict?.audio?.segments || [];
  const band = $("voice");
  band.replaceChildren(svg("text", {x: L - 4, y: 20, "text-anchor": "end"}, "voice"));
  segs.forEach((s, i) => {  // overlapping windows: each drawn until the next one starts
    const label = `${s.start}-${s.end} s: ${s.score === null ? "no speech" : s.score.toFixed(3)}`;
    const stop = Math.min(s.end, segs[i + 1]?.start ?? s.end);
    const rect = svg("rect", {class: "segment", x: xOf(s.start, end), width: Math.max(1, xOf(stop, end) - xOf(s.start, end) - 1),
      y: 6, height: 22, fill: heat(s.score)});
    rect.append(svg("title", {}, label));
    band.append(rect);
  });
  const yOf = (p) => 28 - p * 22;  // the voice model's own scale and thresholds, over the band
  for (const [name, t] of Object.entries(settings.thresholds.audio || {})) {
    band.append(svg("line", {x1: L, x2: W - R, y1: yOf(t), y2: yOf(t), stroke: name === "likely_fake" ? "#c00" : "#e90",
      "stroke-dasharray": "4 3", class: "voice-threshold"}),
      svg("text", {x: W - R + 4, y: name === "review" ? 28 : 13, class: "threshold-label"}, `${name.replace("_", " ")} ${t.toFixed(3)}`));
  }
  const voiced = segs.filter((s) => s.score !== null);
  band.append(svg("polyline", {class: "voice-line", fill: "none", stroke: "#000", "stroke-width": 1.5,
    points: voiced.map((s) => `${xOf((s.start + s.end) / 2, end)},${yOf(s.score)}`).join(" ")}));
  timeAxis(band, end, 32);
  $("voice-legend").replaceChildren(...(segs.length ? [el("span", {}, "voice score: 0 ", el("i", {className: "scale"}), " 1"),
    el("span", {}, el("i", {style: "background:#ccc;height:10px"}), "no speech")] : [el("span", {textContent: "no sound track"})]));
}

function drawPlayhead() {
  const t = player && player.tagName !== "IMG" ? player.currentTime : 0;
  const end = duration(current?.detail.upload.verdict);
  for (const [chart, h] of [[$("timeline"), 148], [$("voice"), 32]]) {
    chart.querySelector(".playhead")?.remove();
    chart.append(svg("line", {class: "playhead", x1: xOf(t, end), x2: xOf(t, end), y1: 0, y2: h, stroke: "#000", "stroke-width": 1.5, "data-t": t.toFixed(3)}));
  }
}

function drawBoxes(verdict) {  // faces boxed on the frame at the playhead (the nearest sampled frame)
  const boxes = $("boxes"), w = player.videoWidth || player.naturalWidth, h = player.videoHeight || player.naturalHeight;
  if (!boxes || !w) return;
  boxes.setAttribute("viewBox", `0 0 ${w} ${h}`);
  boxes.replaceChildren();
  const faces = verdict?.visual?.faces || [];
  const times = [...new Set(faces.flatMap((f) => f.frames.map((x) => x.t)))].sort((a, b) => a - b);
  const step = times.length > 1 ? (times.at(-1) - times[0]) / (times.length - 1) : Infinity;
  const t = player.tagName === "IMG" ? 0 : player.currentTime;
  faces.forEach((f, i) => {
    const near = f.frames.reduce((a, b) => (Math.abs(b.t - t) < Math.abs(a.t - t) ? b : a));
    if (Math.abs(near.t - t) > step / 2 + 0.05) return;
    const [x1, y1, x2, y2] = near.box, c = COLOURS[i % COLOURS.length];
    boxes.append(svg("rect", {class: "face", x: x1, y: y1, width: x2 - x1, height: y2 - y1, fill: "none", stroke: c, "stroke-width": Math.max(2, w / 250)}),
      svg("text", {x: x1, y: Math.max(12, y1 - 4), style: `fill:${c};font-size:${Math.max(12, w / 40)}px`}, `face ${f.track + 1} · ${near.score.toFixed(3)}`));
  });
}

function seek(t) {
  if (player && player.tagName !== "IMG") player.currentTime = t;
}

const SPEEDS = [0.25, 0.5, 1, 1.5, 2];
const FRAME_S = 1 / 25;  // a frame at 25 fps: browsers do not tell a video's own rate

function step(frames) {  // frame by frame, paused: where a blend flickers
  player.pause();
  seek(Math.max(0, player.currentTime + frames * FRAME_S));
}

function faster(by) {
  const i = SPEEDS.indexOf(player.playbackRate);
  player.playbackRate = SPEEDS[Math.min(SPEEDS.length - 1, Math.max(0, (i < 0 ? 2 : i) + by))];
  $("speed").textContent = `${player.playbackRate}x`;
}

function seekFromClick(ev) {
  const box = ev.currentTarget.getBoundingClientRect();
  const end = duration(current?.detail.upload.verdict);
  const x = ((ev.clientX - box.left) / box.width) * W;
  seek(Math.min(end, Math.max(0, ((x - L) / (W - L - R)) * end)));
}

// claiming and deciding

async function next() {
  for (const it of mine.filter((m) => m.id !== current?.detail.item.id)) {  // held items first, as the server has them now
    const detail = await api(`/v1/review/items/${it.id}`);
    if (holds(detail.item)) return show(detail);
    mine = mine.filter((m) => m.id !== it.id);
  }
  const detail = await api(`/v1/review/claim?${filtered()}`, {method: "POST"});  // the next one the filters keep
  if (!detail) { say("nothing to review"); return; }
  await claimed(detail);
}

async function claimed(detail) {
  const shown = show(detail);  // the item is open now; its media may load after the reviewer has acted on it
  say(`claimed item #${detail.item.id}`);
  await shown;
  await refresh();
}

async function claimThis() {
  const id = current.detail.item.id;
  let detail;
  try {
    detail = await api(`/v1/review/items/${id}/claim`, {method: "POST"});
  } catch (e) {  // someone was quicker: say who, not a bare status
    const now = (await api(`/v1/review/items/${id}`)).item;
    if (current?.detail.item.id === id) updateItem(now);
    say(`item #${id} cannot be claimed: ${stateOf(now)}`);
    return;
  }
  await claimed(detail);
}

async function releaseItem(it) {
  await post(`/v1/review/items/${it.id}/release`, {version: it.version});
  say(`released item #${it.id}`);
  if (current?.detail.item.id === it.id) await open(it.id);
  await refresh();
}

function choose(label) {
  if (!current) return;
  if (!current.held) {  // say what the item is now, as the server has it
    const id = current.detail.item.id;
    return api(`/v1/review/items/${id}`).then(({item}) => {
      if (current?.detail.item.id === id) updateItem(item);
      say(`read-only (${stateOf(item)}): claim this item to decide`);
    });
  }
  chosen = label;
  document.querySelectorAll("button[data-label]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.label === label)));
  if ($("reason").value.trim()) return decide(label);
  say(`${label}: a decision needs a reason (type it, or 1-9 for a preset), then Ctrl+Enter`);
  $("reason").focus();
}

async function decide(label) {
  const reason = $("reason").value.trim();
  if (!label) { say("choose a label first"); return; }
  if (!reason) { say("a decision needs a reason"); $("reason").focus(); return; }
  const id = current.detail.item.id;
  let item;
  try {
    const how = current.amend ? "amend" : "decision";
    item = await post(`/v1/review/items/${id}/${how}`, {label, reason, version: current.detail.item.version});
  } catch (e) {  // stale, or no longer mine: the page says what the item is now and stops offering to decide
    const now = (await api(`/v1/review/items/${id}`)).item;
    if (current?.detail.item.id === id) updateItem(now);
    say(`item #${id} was not decided: ${stateOf(now)}`);
    return;
  }
  say(`item #${item.id}: ${item.label}`);
  mine = mine.filter((m) => m.id !== id);  // before anything else can act on the held list
  keep("draft", id, null);
  keep("playhead", id, null);
  current = null;
  player = null;
  $("detail").classList.add("hidden");
  $("reason").value = "";
  history.replaceState(null, "", location.pathname);
  await refresh();
}

function preset(i) {
  const text = settings.preset_reasons[i];
  if (text && current?.held) {
    $("reason").value = text;
    keep("draft", current.detail.item.id, text);
  }
}

function onKey(ev) {
  const fail = (e) => say(e.message);
  if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); if (current?.held) decide(chosen).catch(fail); return; }
  if (ev.target.closest("input, textarea, select, [contenteditable]")) { if (ev.key === "Escape") ev.target.blur(); return; }
  if (ev.ctrlKey || ev.metaKey || ev.altKey || $("zoom").open || $("keys").open) return;
  const labels = current?.detail.appeal ? {u: "upheld", o: "overturned"}
    : current?.detail.escalation || current?.amend ? {f: "confirmed_fake", c: "cleared"} : {f: "confirmed_fake", c: "cleared", e: "escalated"};
  const media = player && player.tagName !== "IMG";
  const action = labels[ev.key] ? () => Promise.resolve(choose(labels[ev.key])).catch(fail)
    : ev.key === "n" ? () => next().catch(fail)
    : ev.key === "?" ? () => $("keys").showModal()
    : /^[1-9]$/.test(ev.key) ? () => preset(+ev.key - 1)
    : !media ? null
    : ev.key === " " ? () => { looping = null; return player.paused ? player.play() : player.pause(); }
    : ev.key === "l" ? () => { looping = null; say("loop stopped"); }
    : ev.key === "ArrowLeft" ? () => seek(Math.max(0, player.currentTime - 1))
    : ev.key === "ArrowRight" ? () => seek(player.currentTime + 1)
    : ev.key === "," ? () => step(-1) : ev.key === "." ? () => step(1)
    : ev.key === "[" ? () => faster(-1) : ev.key === "]" ? () => faster(1) : null;
  if (action) {
    ev.preventDefault();  // the key acts once: it is not also typed where focus lands
    action();
  }
}

async function start() {
  const first = !settings;
  settings = await api("/v1/review/settings");
  $("presets").replaceChildren(...settings.preset_reasons.map((text, i) =>
    el("button", {textContent: `${i + 1} ${text}`, className: "preset", onclick: () => preset(i)})));
  await refresh();
  const opened = /^#item=(\d+)$/.exec(location.hash);
  if (first && opened) await open(+opened[1]).catch((e) => say(e.message));  // the item open before a reload
  if (first) {
    setInterval(() => refresh().catch((e) => say(e.message)), REFRESH_MS);
    setInterval(tick, 1000);
    document.addEventListener("visibilitychange", () => document.visibilityState === "visible" && refresh().catch((e) => say(e.message)));
  }
}

$("save-key").onclick = () => { key = $("key").value; sessionStorage.setItem("apiKey", key); start().catch((e) => say(e.message)); };
$("claim").onclick = () => next().catch((e) => say(e.message));
for (const f of FILTERS) {
  const input = $(`f-${f}`);
  input.value = sessionStorage.getItem(`filter:${f}`) || "";
  input.onchange = () => { sessionStorage.setItem(`filter:${f}`, input.value); refresh().catch((e) => say(e.message)); };
}
$("claim-this").onclick = () => claimThis().catch((e) => say(e.message));
$("release").onclick = () => releaseItem(current.detail.item).catch((e) => say(e.message));
document.querySelectorAll("button[data-label]").forEach((b) => { b.onclick = () => Promise.resolve(choose(b.dataset.label)).catch((e) => say(e.message)); });
$("reason").addEventListener("input", () => current && keep("draft", current.detail.item.id, $("reason").value));
window.addEventListener("pagehide", () => {  // a reload or a closed tab: the open item's playhead stays with it
  if (current && player && player.tagName !== "IMG") keep("playhead", current.detail.item.id, player.currentTime.toFixed(2));
});
$("timeline").onclick = seekFromClick;
$("voice").onclick = seekFromClick;
$("sound").onclick = (ev) => {  // the picture spans the plot area only
  const box = ev.currentTarget.getBoundingClientRect();
  seek(((ev.clientX - box.left) / box.width) * duration(current?.detail.upload.verdict));
};
document.addEventListener("keydown", onKey);
if (key) start().catch((e) => say(e.message));
