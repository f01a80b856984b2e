// Tollgate console: small progressive enhancements over server-rendered pages.
// Every page works without this file except the model picker, the pricing dialog and
// Test Connection, which need it.
(function () {
  "use strict";
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const csrf = () => document.body.dataset.csrf || "";

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v;
      else if (k === "hidden") e.hidden = !!v;
      else e.setAttribute(k, v);
    }
    for (const c of children || []) e.append(c);
    return e;
  }

  // ---- copy buttons: "Copied" for a moment, then the button's own content (icon or text) again
  const copyContent = new WeakMap();
  const copyTimers = new WeakMap();
  function copyText(text, button) {
    const done = () => {
      // the content is saved once, so a second click while it says "Copied" cannot lose it
      if (!copyContent.has(button)) copyContent.set(button, Array.from(button.childNodes, (n) => n.cloneNode(true)));
      clearTimeout(copyTimers.get(button));
      button.classList.add("copied");
      button.textContent = "Copied";
      copyTimers.set(button, setTimeout(() => {
        button.replaceChildren(...copyContent.get(button).map((n) => n.cloneNode(true)));
        button.classList.remove("copied");
      }, 1200));
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, () => fallbackCopy(text, done));
    } else {
      fallbackCopy(text, done);
    }
  }
  function fallbackCopy(text, done) {
    const t = el("textarea", { readonly: "" });
    t.value = text;
    document.body.append(t);
    t.select();
    try { document.execCommand("copy"); done(); } catch (_) { /* the text stays selectable */ }
    t.remove();
  }
  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("[data-copy],[data-copy-from]");
    if (!b) return;
    ev.preventDefault();
    let text = b.dataset.copy !== undefined ? b.dataset.copy : ($("#" + b.dataset.copyFrom) || {}).textContent || "";
    // a local link (the Cost & Usage view) is copied as an absolute URL, ready to share
    if (text.startsWith("/")) text = window.location.origin + text;
    copyText(text, b);
  });

  // ---- a region that scrolls sideways (a wide table or chart on a phone) can take focus, so
  // it scrolls from the keyboard too
  const focusScrollers = () => $$("table, .table-card, .chart, .scroll-x, pre, .tabs").forEach((e) => {
    const scrolls = e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== "visible";
    if (scrolls && !e.hasAttribute("tabindex")) e.setAttribute("tabindex", "0");
    if (!scrolls && e.getAttribute("tabindex") === "0") e.removeAttribute("tabindex");
  });
  focusScrollers();
  window.addEventListener("resize", focusScrollers);

  // ---- forms that submit when a select or a switch changes
  $$("form[data-autosubmit] input[type=checkbox]").forEach((c) => c.addEventListener("change", () => c.form.requestSubmit()));
  $$("form[data-autosubmit]").forEach((f) => {
    $$("select", f).forEach((s) => s.addEventListener("change", () => {
      // a filter select's first option is its disabled placeholder; "" is a real choice there
      // ("(unattributed)", "(no model)")
      if (!s.id.startsWith("add-") || s.selectedIndex > 0) f.requestSubmit();
    }));
  });

  // ---- confirmations
  // Budgets: the Warn at slider shows its value; typing an amount picks "Other".
  const warn = document.getElementById("budget-warn");
  const warnOut = document.getElementById("budget-warn-value");
  if (warn && warnOut) warn.addEventListener("input", () => { warnOut.textContent = warn.value + " %"; });
  const capCustom = document.getElementById("budget-cap-custom");
  if (capCustom) capCustom.addEventListener("input", () => {
    const other = document.querySelector('input[name="cap"][value="custom"]');
    if (other) other.checked = true;
  });
  $$("form[data-confirm]").forEach((f) => f.addEventListener("submit", (ev) => {
    if (!window.confirm(f.dataset.confirm)) ev.preventDefault();
  }));
  $$("[data-must-equal]").forEach((input) => {
    const button = $("[data-enable-when-confirmed]", input.form);
    const sync = () => { if (button) button.disabled = input.value.trim() !== input.dataset.mustEqual; };
    input.addEventListener("input", sync);
    sync();
  });

  // ---- Cost & Usage: range picker; custom ranges go into the URL as ISO-8601 (UTC)
  const rangeForm = $("#range-form");
  if (rangeForm) {
    const range = $("#range", rangeForm);
    range.addEventListener("change", () => { if (range.value !== "custom") rangeForm.requestSubmit(); });
    rangeForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const params = new URLSearchParams();
      for (const [k, v] of new FormData(rangeForm)) {
        if ((k === "customStart" || k === "customEnd") && range.value !== "custom") continue;
        let val = v;
        if ((k === "customStart" || k === "customEnd") && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/.test(v)) val = v + ":00Z";
        params.append(k, val);
      }
      window.location.assign("/usage?" + params.toString());
    });
  }

  // ---- Cost & Usage charts: a crosshair tooltip with every series' value in the bucket under
  // the pointer (and the previous period's when it is drawn); a legend entry isolates its series
  // (again: all). Clicking a bar is a plain SVG link to that bucket's window (no script needed).
  $$(".chart-card").forEach((card) => {
    const svg = $("svg.bars", card);
    const legend = $(".legend", card);
    if (!svg || !legend) return;
    const names = $$(".legend-item", legend).map((b) => b.textContent.trim());
    const buckets = $$("g.bucket", svg);
    const prevPts = $$("circle.prev-pt", svg);
    const tip = el("div", { class: "chart-tip", role: "status", hidden: true });
    svg.parentElement.append(tip);
    const ns = "http://www.w3.org/2000/svg";
    const cross = document.createElementNS(ns, "line");
    cross.setAttribute("class", "crosshair");
    cross.setAttribute("visibility", "hidden");
    svg.append(cross);
    let isolated = -1;
    const show = (i, ev) => {
      const g = buckets[i];
      if (!g) return;
      const hit = $("rect.hit", g);
      const x = parseFloat(hit.getAttribute("x")) + parseFloat(hit.getAttribute("width")) / 2;
      cross.setAttribute("x1", x); cross.setAttribute("x2", x);
      cross.setAttribute("y1", hit.getAttribute("y"));
      cross.setAttribute("y2", parseFloat(hit.getAttribute("y")) + parseFloat(hit.getAttribute("height")));
      cross.setAttribute("visibility", "visible");
      buckets.forEach((b, j) => b.classList.toggle("hover", j === i));
      const rows = [el("div", { class: "tip-head", text: `${g.dataset.label} · ${g.dataset.totalLabel}` })];
      names.forEach((name, si) => {
        const seg = $(`rect.seg[data-series="${si}"]`, g);
        if (isolated >= 0 && si !== isolated) return;
        rows.push(el("div", { class: "tip-row" }, [el("span", { text: name }), el("span", { text: seg ? seg.dataset.value : "—" })]));
      });
      const prev = prevPts[i];
      if (prev) rows.push(el("div", { class: "tip-row tip-prev" }, [el("span", { text: "Previous period" }), el("span", { text: prev.dataset.value })]));
      tip.replaceChildren(...rows);
      tip.hidden = false;
      const box = svg.parentElement.getBoundingClientRect();
      const px = ev ? ev.clientX - box.left : box.width / 2;
      const left = Math.min(Math.max(px + 12, 0), Math.max(box.width - tip.offsetWidth, 0));
      tip.style.left = left + "px";
      tip.style.top = "8px";
    };
    const hide = () => {
      tip.hidden = true;
      cross.setAttribute("visibility", "hidden");
      buckets.forEach((b) => b.classList.remove("hover"));
    };
    svg.addEventListener("mousemove", (ev) => {
      const g = ev.target.closest && ev.target.closest("g.bucket");
      if (g) show(buckets.indexOf(g), ev);
    });
    svg.addEventListener("mouseleave", hide);
    // keyboard: a focused bar link shows its tooltip too
    svg.addEventListener("focusin", (ev) => {
      const g = $("g.bucket", ev.target.closest("a") || ev.target);
      if (g) show(buckets.indexOf(g), null);
    });
    svg.addEventListener("focusout", hide);
    // native tooltips would cover the crosshair's: the titles stay for assistive technology
    $$("title", svg).forEach((t) => t.parentElement.setAttribute("aria-label", t.textContent));
    $$("g.bucket > title, rect.seg > title", svg).forEach((t) => t.remove());
    legend.addEventListener("click", (ev) => {
      const b = ev.target.closest(".legend-item");
      if (!b) return;
      const si = parseInt(b.dataset.series, 10);
      isolated = isolated === si ? -1 : si;
      $$(".legend-item", legend).forEach((x) => x.setAttribute("aria-pressed", String(parseInt(x.dataset.series, 10) === isolated)));
      $$("rect.seg", svg).forEach((r) => r.classList.toggle("dim", isolated >= 0 && parseInt(r.dataset.series, 10) !== isolated));
      card.dataset.isolated = isolated >= 0 ? names[isolated] : "";
    });
  });

  // ---- Show commands follow the model chosen for Test Connection
  const commands = $("#show-commands");
  const checkModel = $("#check-model");
  if (commands && checkModel) {
    const slot = commands.dataset.modelSlot;
    const syncCommands = () => {
      const m = checkModel.value;
      $$("pre[data-template]", commands).forEach((pre) => {
        pre.textContent = m === "" ? pre.dataset.any : pre.dataset.template.split(slot).join(m);
      });
    };
    checkModel.addEventListener("change", syncCommands);
    syncCommands();
  }

  // ---- Test Connection
  const testBtn = $("#test-connection");
  if (testBtn) {
    testBtn.addEventListener("click", async () => {
      const line = $("#check-status");
      const text = $("#check-text");
      line.classList.remove("pass", "fail");
      text.textContent = "Testing…";
      testBtn.disabled = true;
      try {
        const resp = await fetch(testBtn.dataset.checkUrl, {
          method: "POST",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf(), "Accept": "application/json" },
          body: JSON.stringify({ model: $("#check-model").value }),
          credentials: "same-origin",
        });
        const body = await resp.json().catch(() => ({}));
        if (resp.ok) {
          line.classList.add(body.ok ? "pass" : "fail");
          const status = body.upstream_status ? ` · HTTP ${body.upstream_status}` : "";
          text.textContent = `${body.ok ? "Passed" : "Failed"} · ${body.latency_ms} ms${status} · ${body.message}`;
        } else {
          line.classList.add("fail");
          text.textContent = `Failed · ${(body.error && body.error.message) || resp.status}`;
        }
      } catch (e) {
        line.classList.add("fail");
        text.textContent = "Failed · the console could not reach the gateway";
      } finally {
        testBtn.disabled = false;
      }
    });
  }

  // ---- provider form
  const form = $("#provider-form");
  if (!form) return;
  const editing = form.dataset.editing === "true";
  const nameInput = $("#name");
  const displayInput = $("#display_name");
  const submit = $("#submit-provider");
  const typeValue = () => {
    const r = $("input[id^=type-]:checked", form);
    return r ? r.value : "";
  };

  // Resource ID: derived from the display name until edited by hand; checked live
  function derive(s) {
    let id = s.toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
      .replace(/[^a-z0-9]+/g, "-").replace(/^[^a-z]+/, "").replace(/-+$/, "");
    id = id.slice(0, 63).replace(/-+$/, "");
    return id;
  }
  let manual = editing || (nameInput && nameInput.value !== "" && nameInput.value !== derive(displayInput.value));
  // the Resource ID as the live check judged it: "ok", "bad" (invalid or taken) or "unknown"
  let nameState = editing ? "ok" : (form.dataset.nameError === "true" ? "bad" : "unknown");
  let checkTimer = null;
  function liveCheck() {
    if (editing || !nameInput) return;
    clearTimeout(checkTimer);
    const ok = $("#name-ok");
    const bad = $("#name-live-error");
    const v = nameInput.value.trim();
    nameState = "unknown";
    if (v === "") { ok.classList.add("hidden"); bad.classList.add("hidden"); return; }
    checkTimer = setTimeout(async () => {
      try {
        const r = await fetch("/ui/resource-id?name=" + encodeURIComponent(v), { headers: { "Accept": "application/json" } });
        const j = await r.json();
        if (nameInput.value.trim() !== v) return;
        nameState = j.ok ? "ok" : "bad";
        ok.textContent = j.ok ? j.message : "";
        bad.textContent = j.ok ? "" : j.message;
        ok.classList.toggle("hidden", !j.ok);
        bad.classList.toggle("hidden", j.ok);
        nameInput.closest(".field").classList.toggle("has-error", !j.ok);
        summary();
      } catch (_) { /* the server checks again on save */ }
    }, 250);
  }
  if (!editing && nameInput) {
    displayInput.addEventListener("input", () => {
      if (!manual) nameInput.value = derive(displayInput.value);
      liveCheck();
      summary();
    });
    nameInput.addEventListener("input", () => {
      manual = nameInput.value !== "" && nameInput.value !== derive(displayInput.value);
      liveCheck();
      summary();
    });
  }

  // Summary panel
  function summary() {
    const name = nameInput ? nameInput.value.trim() : "";
    const t = typeValue();
    const card = t ? $(`label[for=type-${t}] strong`) : null;
    // ticked only once the live check approved it (a taken or invalid name is not done)
    $("#sum-name").classList.toggle("done", name !== "" && nameState === "ok");
    $("#sum-name").classList.toggle("bad", nameState === "bad");
    $("#sum-name-val").textContent = name;
    $("#sum-type").classList.toggle("done", t !== "");
    $("#sum-type-val").textContent = card ? card.textContent : "";
    const n = $$("#model-rows tr.model-row").length;
    $("#sum-models-val").textContent = n === 0 ? "all" : String(n);
    $("#models-empty").hidden = n !== 0;
    if (!editing) submit.disabled = !(name !== "" && t !== "" && nameState !== "bad");
  }
  // switching type drops the models picked from the other type's catalog (models added as
  // custom IDs stay)
  $$("input[id^=type-]", form).forEach((r) => r.addEventListener("change", () => {
    const t = typeValue();
    $$("#model-rows tr.model-row").forEach((tr) => {
      if (tr.dataset.custom !== "1" && tr.dataset.catalogType !== t) tr.remove();
    });
    hideList();
    summary();
    loadCatalog();
  }));

  // Model picker
  const search = $("#model-search");
  const list = $("#model-suggestions");
  const rows = $("#model-rows");
  let nextIdx = parseInt(rows.dataset.nextIdx || "0", 10);
  const catalogs = {};
  let active = -1;
  const BUCKETS = ["input_per_million", "output_per_million", "cached_input_per_million",
    "cache_creation_5m_per_million", "cache_creation_1h_per_million"];

  async function loadCatalog() {
    const t = typeValue();
    if (!t || t === "openai_compatible" || catalogs[t]) return catalogs[t] || [];
    try {
      const r = await fetch("/ui/catalog?type=" + encodeURIComponent(t), { headers: { "Accept": "application/json" } });
      catalogs[t] = (await r.json()).models || [];
    } catch (_) {
      catalogs[t] = [];
    }
    return catalogs[t];
  }
  function selectedNames() { return $$("#model-rows tr.model-row").map((r) => r.dataset.name); }
  function money(dollars) {
    if (dollars === "") return "—";
    const [w, f = ""] = dollars.split(".");
    return "$" + w + "." + (f + "00").slice(0, Math.max(2, f.length));
  }
  function unknownWarning(name) {
    return `model "${name}" is not in the catalog for type ${typeValue()}: it will be unpriced unless custom_pricing is set`;
  }
  function addRow(name, label, rates, custom) {
    if (!name || selectedNames().includes(name)) return;
    const idx = nextIdx++;
    const r = (rates || "||||").split("|");
    const nameCell = el("td", {}, [el("code", { class: "m-name", text: name })]);
    if (label && label !== name) nameCell.append(" ", el("span", { class: "muted small", text: label }));
    nameCell.append(" ", el("span", { class: "price-badge", title: "Custom pricing", hidden: true, text: "$" }));
    const hidden = el("input", { type: "hidden", name: `m${idx}.name` });
    hidden.value = name;
    nameCell.append(hidden);
    for (const b of BUCKETS) {
      nameCell.append(el("input", { type: "hidden", class: "ov", "data-bucket": b, name: `m${idx}.${b}`, value: "" }));
    }
    if (custom) nameCell.append(el("p", { class: "field-warn", text: unknownWarning(name) }));
    const attrs = { class: "model-row", "data-idx": String(idx), "data-rates": r.join("|"), "data-name": name };
    if (custom) attrs["data-custom"] = "1";
    else attrs["data-catalog-type"] = typeValue();
    const tr = el("tr", attrs, [
      nameCell,
      el("td", { class: "num m-in", text: money(r[0]) }),
      el("td", { class: "num m-out", text: money(r[1]) }),
      el("td", { class: "right nowrap" }, [
        el("button", { type: "button", class: "icon-btn", "data-action": "override", title: "Override pricing", "aria-label": `Override pricing for ${name}`, text: "✎" }),
        el("button", { type: "button", class: "icon-btn", "data-action": "remove", title: "Remove", "aria-label": `Remove ${name}`, text: "×" }),
      ]),
    ]);
    rows.insertBefore(tr, $("#models-empty"));
    summary();
  }
  let listSeq = 0;
  function hideList() { listSeq++; list.classList.add("hidden"); list.innerHTML = ""; active = -1; }
  async function showList() {
    // only the latest call draws: an older one finishing late (the first catalog fetch) would
    // show, and highlight for Enter, the suggestions of text no longer typed
    const seq = ++listSeq;
    const catalog = await loadCatalog();
    if (seq !== listSeq) return;
    const q = search.value.trim().toLowerCase();
    const chosen = selectedNames();
    const matches = catalog.filter((m) => !chosen.includes(m.name) &&
      (q === "" || m.name.toLowerCase().includes(q) || (m.label || "").toLowerCase().includes(q))).slice(0, 60);
    list.innerHTML = "";
    const typed = search.value.trim();
    // catalog entries first: Enter takes the highlighted one (the first, unless arrows moved it)
    for (const m of matches) {
      list.append(el("div", { class: "picker-item", role: "option", "data-name": m.name, "data-label": m.label || "", "data-rates": m.rates }, [
        el("span", {}, [el("span", { class: "pm-name", text: m.name }), el("span", { class: "pm-label", text: m.label && m.label !== m.name ? "  " + m.label : "" })]),
        el("span", { class: "pm-price", text: `${m.input} in · ${m.output} out / 1M` }),
      ]));
    }
    // free text is added only through this explicit entry (or, for a type without a catalog,
    // by Enter: there is nothing else to pick)
    if (typed !== "" && !catalog.some((m) => m.name === typed) && !chosen.includes(typed)) {
      list.append(el("div", { class: "picker-item picker-custom", role: "option", "data-name": typed, "data-custom": "1", id: "add-custom-model" }, [
        el("span", {}, [el("span", { class: "pm-name", text: `Add custom "${typed}"` }), el("span", { class: "pm-label", text: "  not in the catalog: unpriced unless you override its pricing" })]),
        el("span", { class: "pm-price", text: "no catalog price" }),
      ]));
    }
    list.classList.toggle("hidden", list.children.length === 0);
    const items = $$(".picker-item", list);
    const noCatalog = catalog.length === 0;
    setActive(items, typed !== "" && items.length > 0 && (matches.length > 0 || noCatalog) ? 0 : -1);
  }
  function setActive(items, i) {
    active = i;
    items.forEach((it, j) => {
      it.classList.toggle("active", j === active);
      it.setAttribute("aria-selected", j === active ? "true" : "false");
    });
    if (active >= 0) items[active].scrollIntoView({ block: "nearest" });
  }
  function pick(item) {
    addRow(item.dataset.name, item.dataset.label || "", item.dataset.rates || "", item.dataset.custom === "1");
    search.value = "";
    hideList();
    search.focus();
  }
  search.addEventListener("input", showList);
  search.addEventListener("focus", showList);
  search.addEventListener("keydown", (ev) => {
    const items = $$(".picker-item", list);
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      if (!items.length) return;
      const from = active < 0 ? (ev.key === "ArrowDown" ? -1 : 0) : active;
      setActive(items, (from + (ev.key === "ArrowDown" ? 1 : items.length - 1)) % items.length);
    } else if (ev.key === "Enter") {
      // Enter never submits the form here; it takes the highlighted entry, and only that
      ev.preventDefault();
      if (active >= 0 && items[active]) pick(items[active]);
    } else if (ev.key === "Escape") {
      hideList();
    }
  });
  list.addEventListener("mousedown", (ev) => {
    const item = ev.target.closest(".picker-item");
    if (item) { ev.preventDefault(); pick(item); }
  });
  // hide after a blur only if focus did not come back meanwhile (clearing and retyping blurs
  // and refocuses: a late hide would take away the list being typed into)
  search.addEventListener("blur", () => setTimeout(() => { if (document.activeElement !== search) hideList(); }, 150));

  // Pricing dialog
  const dialog = $("#pricing-dialog");
  let editingRow = null;
  const RATE = /^(\d+(\.\d{0,8})?|\.\d{1,8})$/;
  function openPricing(tr) {
    editingRow = tr;
    $("#pricing-model").textContent = tr.dataset.name;
    const rates = (tr.dataset.rates || "||||").split("|");
    BUCKETS.forEach((b, i) => {
      const input = $("#ov-" + b);
      input.value = $(`input.ov[data-bucket=${b}]`, tr).value;
      input.placeholder = rates[i] !== "" ? rates[i] : "no catalog rate";
      $("#cat-" + b).textContent = rates[i] !== "" ? `catalog ${money(rates[i])}` : "catalog: none";
    });
    $("#pricing-error").classList.add("hidden");
    dialog.showModal();
  }
  rows.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-action]");
    if (!b) return;
    const tr = b.closest("tr");
    if (b.dataset.action === "remove") { tr.remove(); summary(); }
    if (b.dataset.action === "override") openPricing(tr);
  });
  dialog.addEventListener("click", (ev) => {
    const r = ev.target.closest("[data-reset]");
    if (r) $("#ov-" + r.dataset.reset).value = "";
  });
  $("#pricing-reset-all").addEventListener("click", () => BUCKETS.forEach((b) => { $("#ov-" + b).value = ""; }));
  $("#pricing-cancel").addEventListener("click", () => dialog.close());
  $("#pricing-form").addEventListener("submit", (ev) => {
    const bad = BUCKETS.map((b) => $("#ov-" + b)).find((i) => i.value.trim() !== "" && !RATE.test(i.value.trim()));
    if (bad) {
      ev.preventDefault();
      const err = $("#pricing-error");
      err.textContent = `"${bad.value}" is not an amount in dollars (at most 8 decimals), e.g. 3 or 0.075`;
      err.classList.remove("hidden");
      return;
    }
    const rates = (editingRow.dataset.rates || "||||").split("|");
    let any = false;
    BUCKETS.forEach((b, i) => {
      const v = $("#ov-" + b).value.trim();
      $(`input.ov[data-bucket=${b}]`, editingRow).value = v;
      if (v !== "") any = true;
      if (i === 0) $(".m-in", editingRow).textContent = money(v !== "" ? v : rates[0]);
      if (i === 1) $(".m-out", editingRow).textContent = money(v !== "" ? v : rates[1]);
    });
    $(".price-badge", editingRow).hidden = !any;
    // an overridden model is priced: its "not in the catalog" warning no longer applies
    const warn = $(".field-warn", editingRow);
    if (warn && editingRow.dataset.custom === "1") warn.hidden = any;
  });

  summary();
  if (!editing && nameInput && nameInput.value.trim() !== "" && nameState === "unknown") liveCheck();
  if (typeValue()) loadCatalog();
})();
