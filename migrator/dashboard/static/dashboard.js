// The dashboard's behaviour, plain JS: the migration page's polling, chart and phase actions; the time-travel slider.
"use strict";

(function live() {
  const box = document.getElementById("live");
  if (!box) return;
  const every = Number(box.dataset.pollMs) || 1000;
  const samples = [];
  const MAX = 120;

  function sample() {
    const data = box.querySelector(".live");
    if (!data) return;
    samples.push({ lag: Number(data.dataset.lag) || 0,
                   rate: data.dataset.rate === "" ? null : Number(data.dataset.rate) });
    if (samples.length > MAX) samples.shift();
    draw();
  }

  function line(values, top) {  // each series on its own scale: its largest sample (at least `top`) at the top
    const W = 600, H = 160, pad = 40;
    const known = values.filter((v) => v !== null);
    const most = Math.max(top, ...known);
    const step = W / Math.max(values.length - 1, 1);
    return values.map((v, i) => v === null ? null :
      `${(i * step).toFixed(1)},${(H - 4 - (most ? v / most : 0) * (H - pad)).toFixed(1)}`)
      .filter((p) => p !== null).join(" ");
  }

  function draw() {
    const lags = samples.map((s) => s.lag);
    const rates = samples.map((s) => s.rate);
    document.getElementById("chart-lag").setAttribute("points", line(lags, 1));
    document.getElementById("chart-rate").setAttribute("points", line(rates, 0.001));
    const last = samples[samples.length - 1];
    document.getElementById("chart-lag-label").textContent =
      `lag ${last.lag} (top of the chart: ${Math.max(1, ...lags)})`;
    document.getElementById("chart-rate-label").textContent =
      `mismatch rate ${last.rate === null ? "none" : (last.rate * 100).toFixed(4) + "%"}`;
  }

  async function poll() {
    try {
      const res = await fetch(box.dataset.src, { headers: { Accept: "text/html" } });
      if (res.ok) {
        box.innerHTML = await res.text();
        box.dataset.updated = String(Date.now());
        sample();
      }
    } catch (err) {
      // the server is away for a moment: keep the last picture and try again
    }
    setTimeout(poll, every);
  }

  sample();
  setTimeout(poll, every);

  const token = document.getElementById("token");
  if (token) token.value = sessionStorage.getItem("dashboard-token") || "";
  document.querySelectorAll("button[data-action]").forEach((button) => {
    button.addEventListener("click", async () => {
      const name = button.dataset.action;
      if (!window.confirm(button.dataset.confirm)) return;
      sessionStorage.setItem("dashboard-token", token.value);
      const body = name === "reads"
        ? { mode: document.getElementById("reads-mode").value,
            percent: Number(document.getElementById("reads-percent").value) }
        : {};
      const out = document.getElementById("action-result");
      let res, answer;
      try {
        res = await fetch(`/actions/${name}`, {
          method: "POST",
          headers: { "Content-Type": "application/json", Authorization: `Bearer ${token.value}` },
          body: JSON.stringify(body),
        });
        answer = await res.json();
      } catch (err) {
        out.className = "unmet";
        out.textContent = `${name}: the dashboard could not be reached (${err})`;
        return;
      }
      out.className = res.ok ? "ok" : "unmet";
      out.textContent = res.ok ? `${name}: ${answer.message}` : `${name} refused (${res.status}): ${answer.detail}`;
      const unmet = document.getElementById("action-unmet");
      unmet.replaceChildren(...(answer.unmet || []).map((g) => {
        const li = document.createElement("li");
        li.textContent = `${g.name}: ${g.detail}`;
        return li;
      }));
    });
  });
})();

(function travel() {
  const slider = document.getElementById("version");
  if (!slider) return;
  const states = JSON.parse(document.getElementById("states").textContent);
  const types = JSON.parse(document.getElementById("event-types").textContent);

  function show() {
    const v = Number(slider.value);
    const state = states[v];
    const before = v > 0 ? states[v - 1] : null;
    document.getElementById("version-shown").textContent = String(v);
    document.getElementById("version-event").textContent =
      v === 0 ? "before the first event" : `after event ${v}: ${types[v - 1]}`;
    document.getElementById("state-none").hidden = state !== null;
    document.querySelectorAll("#state tr[data-field]").forEach((row) => {
      const f = row.dataset.field;
      const value = state === null || !(f in state) ? "" : JSON.stringify(state[f]);
      const old = before === null || !(f in before) ? "" : JSON.stringify(before[f]);
      row.querySelector(".value").textContent = value;
      row.classList.toggle("changed", v > 0 && value !== old);
    });
    document.querySelectorAll("#events tr[data-version]").forEach((row) => {
      row.classList.toggle("current", Number(row.dataset.version) === v);
    });
    history.replaceState(null, "", `?${new URLSearchParams({ ...Object.fromEntries(new URLSearchParams(location.search)), version: v })}`);
  }

  slider.addEventListener("input", show);
  show();
})();
