"use strict";
// The report's only script. Untrusted text reaches the page through textContent alone, never as markup.
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const S = data.strings;
  const SYMBOLS = { pass: "✔", warn: "!", fail: "✖", skip: "–", error: "?", muted: "~" };
  const RANK = { fail: 5, error: 4, warn: 3, muted: 2, skip: 1, pass: 0 };
  const tbody = document.querySelector("#matrix tbody");
  const rows = Array.from(tbody.rows);
  const form = document.getElementById("filters");
  const shown = document.getElementById("shown");
  const detail = document.getElementById("detail");
  const detailAll = document.getElementById("detail-all");
  const template = document.getElementById("result-template");
  let current = null;

  function result(r) {
    const [id, status, message, fix, command, evidence, mesheryCode] = r;
    const check = data.checks[id] || [id, "", "", ""];
    return { id, status, message: S[message], fix: S[fix], command: command >= 0 ? S[command] : "", evidence,
      mesheryCode: mesheryCode || "", title: check[0], category: check[1], severity: check[2], docs: check[3] };
  }

  // What free text matches: the cluster's identity and every non-passing result's id, message and Meshery code.
  const haystacks = rows.map((tr) => {
    const parts = [tr.dataset.name, tr.dataset.server, tr.dataset.provider, tr.dataset.mode];
    for (const raw of data.clusters[Number(tr.dataset.index)]) {
      const r = result(raw);
      parts.push(r.id);
      if (r.status !== "pass") parts.push(r.message, r.mesheryCode);
    }
    return parts.join("\n").toLowerCase();
  });

  function applyFilters() {
    const statuses = new Set(Array.from(form.querySelectorAll("input[name=status]:checked"), (i) => i.value));
    const category = form.elements.category.value;
    const provider = form.elements.provider.value;
    const mode = form.elements.mode.value;
    const text = form.elements.q.value.trim().toLowerCase();
    let visible = 0;
    rows.forEach((tr, i) => {
      const ok = statuses.has(tr.dataset.status)
        && (!category || tr.dataset.problemCategories.split(" ").includes(category))
        && (!provider || tr.dataset.provider === provider)
        && (!mode || tr.dataset.mode === mode)
        && (!text || haystacks[i].includes(text));
      tr.hidden = !ok;
      if (ok) visible += 1;
    });
    shown.textContent = visible + " of " + rows.length + " clusters shown";
  }

  function sortBy(key, button) {
    const ascending = button.getAttribute("aria-sort") !== "ascending";
    document.querySelectorAll("button.sort").forEach((b) => b.removeAttribute("aria-sort"));
    button.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    const numeric = key === "rank";
    const value = (tr) => (numeric ? Number(tr.dataset.rank) : (tr.dataset[key] || "").toLowerCase());
    const sorted = rows.slice().sort((a, b) => {
      const va = value(a), vb = value(b);
      const cmp = numeric ? va - vb : va < vb ? -1 : va > vb ? 1 : 0;
      return (ascending ? cmp : -cmp) || Number(a.dataset.index) - Number(b.dataset.index);
    });
    const frag = document.createDocumentFragment();
    sorted.forEach((tr) => frag.appendChild(tr));
    tbody.appendChild(frag);
  }

  function copy(text, button) {
    const done = () => { button.textContent = "Copied"; setTimeout(() => { button.textContent = button.dataset.label; }, 1500); };
    const fallback = () => {
      const area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "offscreen";
      document.body.appendChild(area);
      area.select();
      try { document.execCommand("copy"); done(); } finally { area.remove(); }
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, fallback);
    } else {
      fallback();
    }
  }

  function renderResult(r) {
    const li = template.content.firstElementChild.cloneNode(true);
    li.dataset.status = r.status;
    li.dataset.checkId = r.id;
    const badge = li.querySelector(".badge");
    badge.classList.add("st-" + r.status);
    badge.querySelector(".sym").textContent = SYMBOLS[r.status] || "";
    badge.querySelector(".word").textContent = r.status;
    li.querySelector(".check-id").textContent = r.id;
    li.querySelector(".check-title").textContent = r.title;
    li.querySelector(".message").textContent = r.message;
    if (r.fix && r.status !== "pass") {
      const fix = li.querySelector(".fix");
      fix.hidden = false;
      fix.querySelector(".fix-text").textContent = r.fix;
      const button = fix.querySelector("button");
      button.dataset.label = button.textContent;
      button.addEventListener("click", () => copy(r.fix, button));
    }
    if (r.command) {
      const cmd = li.querySelector(".command");
      cmd.hidden = false;
      cmd.querySelector(".command-text").textContent = r.command;
      const button = cmd.querySelector("button");
      button.dataset.label = button.textContent;
      button.addEventListener("click", () => copy(r.command, button));
    }
    const docs = li.querySelector("a.docs");
    if (/^https?:\/\//.test(r.docs || "")) {
      docs.href = r.docs;
      docs.hidden = false;
    }
    li.querySelector(".category").textContent = "category " + r.category + ", severity " + r.severity;
    if (r.mesheryCode) {
      const said = li.querySelector(".meshery-code");
      said.hidden = false;
      said.querySelector("code").textContent = r.mesheryCode;
    }
    if (r.evidence) {
      const ev = li.querySelector("details.evidence");
      ev.hidden = false;
      ev.querySelector("pre").textContent = JSON.stringify(r.evidence, null, 2);
    }
    return li;
  }

  function interesting(r) {
    return r.status !== "pass" && !(r.status === "skip" && !r.fix);
  }

  function blockedBy(r) {
    const root = r.status === "skip" && r.fix && r.evidence ? r.evidence.blocked_by : null;
    return typeof root === "string" ? root : null;
  }

  function waitingNote(root, ids) {
    return ids.length + (ids.length === 1 ? " check waits on " : " checks wait on ") + root + ": " + ids.join(", ");
  }

  function showCluster(tr, category) {
    current = { tr, category };
    rows.forEach((row) => row.classList.toggle("selected", row === tr));
    const all = data.clusters[Number(tr.dataset.index)].map(result);
    const inCategory = category ? all.filter((r) => r.category === category) : all;
    // Checks held back by a failure fold into one line under it, unless every result is asked for.
    const waiting = new Map();
    if (!detailAll.checked) {
      inCategory.forEach((r) => {
        const root = blockedBy(r);
        if (root) waiting.set(root, (waiting.get(root) || []).concat([r.id]));
      });
    }
    const list = detailAll.checked ? inCategory : inCategory.filter((r) => interesting(r) && !blockedBy(r));
    list.sort((a, b) => RANK[b.status] - RANK[a.status]);
    document.getElementById("detail-title").textContent =
      tr.dataset.name + (category ? " — " + category : "") + ": " + tr.dataset.status;
    document.getElementById("detail-meta").textContent =
      "provider " + tr.dataset.provider + ", mode " + tr.dataset.mode + "; " + list.length + " of " + inCategory.length
      + " results shown" + (detailAll.checked ? "" : " (problems only)");
    const items = list.map((r) => {
      const li = renderResult(r);
      if (waiting.has(r.id)) {
        const note = li.querySelector(".waiting");
        note.textContent = waitingNote(r.id, waiting.get(r.id));
        note.hidden = false;
        waiting.delete(r.id);
      }
      return li;
    });
    waiting.forEach((ids, root) => {
      const li = document.createElement("li");
      li.className = "result waiting-only";
      li.textContent = waitingNote(root, ids) + " (" + root + " is in another category)";
      items.push(li);
    });
    const ol = document.getElementById("detail-results");
    ol.replaceChildren(...items);
    detail.hidden = false;
  }

  tbody.addEventListener("click", (event) => {
    const button = event.target.closest("button.open");
    if (!button) return;
    showCluster(button.closest("tr"), button.dataset.category);
    detail.scrollIntoView({ block: "nearest" });
  });
  detailAll.addEventListener("change", () => { if (current) showCluster(current.tr, current.category); });
  document.querySelectorAll("button.sort").forEach((b) => b.addEventListener("click", () => sortBy(b.dataset.key, b)));
  form.addEventListener("input", applyFilters);
  form.addEventListener("change", applyFilters);
  form.addEventListener("submit", (event) => event.preventDefault());

  const fleet = document.getElementById("fleet-results");
  if (fleet) {
    const results = data.fleet.map(result);
    results.sort((a, b) => RANK[b.status] - RANK[a.status]);
    fleet.replaceChildren(...results.map(renderResult));
  }
  applyFilters();
})();
