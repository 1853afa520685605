// AnySize's page: the A1111 API it sits on (/sdapi/v1/...), no build step.
"use strict";
const $ = (id) => document.getElementById(id);
let polling = null;

async function api(path, body) {
  const response = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new Error((data && data.detail) || `${response.status} ${response.statusText}`);
  return data;
}

async function loadChoices() {
  const samplers = await api("/sdapi/v1/samplers");
  $("sampler").replaceChildren(...samplers.map((s) => new Option(s.name, s.name)));
  const options = await api("/sdapi/v1/options");
  $("model").textContent = "model: " + options.sd_model_checkpoint;
}

async function poll() {
  try {
    const p = await api("/sdapi/v1/progress");
    const s = p.state;
    if (s.job_count > 0) {
      $("bar").value = p.progress;
      $("statustext").textContent = `batch ${s.job_no + 1}/${s.job_count}, step ${s.sampling_step}/${s.sampling_steps}` +
        (p.eta_relative > 0 ? `, ${p.eta_relative.toFixed(1)} s left` : "") + (s.anysize_queued ? `, ${s.anysize_queued} waiting` : "");
    }
    if (p.current_image) {
      $("preview").src = "data:image/png;base64," + p.current_image;
      $("preview").hidden = false;
    }
  } catch (e) { /* the next poll tries again */ }
}

function addToGallery(images, info) {
  images.forEach((image, i) => {
    const figure = document.createElement("figure");
    const img = document.createElement("img");
    img.src = "data:image/png;base64," + image;
    img.alt = info.all_prompts ? info.all_prompts[i] : "";
    const caption = document.createElement("figcaption");
    caption.textContent = info.infotexts ? info.infotexts[i] : "";
    figure.append(img, caption);
    $("gallery").prepend(figure);
  });
}

async function generate(event) {
  event.preventDefault();
  $("error").textContent = "";
  $("generate").disabled = true;
  $("interrupt").disabled = false;
  $("bar").value = 0;
  $("statustext").textContent = "queued";
  polling = setInterval(poll, 500);
  try {
    const result = await api("/sdapi/v1/txt2img", {
      prompt: $("prompt").value, negative_prompt: $("negative").value,
      width: Number($("width").value), height: Number($("height").value), steps: Number($("steps").value),
      cfg_scale: Number($("cfg").value), seed: Number($("seed").value), sampler_name: $("sampler").value,
      anysize_attention: $("attention").value, anysize_compose: $("compose").value,
    });
    const info = JSON.parse(result.info);
    addToGallery(result.images, info);
    $("bar").value = 1;
    $("statustext").textContent = (info.anysize_interrupted ? "interrupted" : "done") + `: seed ${info.seed}`;
  } catch (e) {
    $("error").textContent = e.message;
    $("statustext").textContent = "failed";
  } finally {
    clearInterval(polling);
    $("preview").hidden = true;
    $("generate").disabled = false;
    $("interrupt").disabled = true;
  }
}

// Fields can come from the address (?prompt=...&steps=8&sampler=Euler%20a&autostart=1), for links and tests.
function applyQuery(query) {
  const fields = { prompt: "prompt", negative: "negative", width: "width", height: "height", steps: "steps", cfg: "cfg",
                   seed: "seed", sampler: "sampler", attention: "attention" };
  for (const [key, id] of Object.entries(fields)) if (query.has(key)) $(id).value = query.get(key);
}

$("form").addEventListener("submit", generate);
$("interrupt").addEventListener("click", () => api("/sdapi/v1/interrupt", {}).catch(() => {}));
loadChoices().then(() => {
  const query = new URLSearchParams(location.search);
  applyQuery(query);
  if (query.get("autostart") === "1") $("form").requestSubmit();
}).catch((e) => { $("error").textContent = e.message; });
