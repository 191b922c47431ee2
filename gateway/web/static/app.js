// converger web pages: a few behaviours, no framework, no build step.
(function () {
  "use strict";

  // Forms marked data-confirm ask first (tenant/channel/user deletion).
  document.addEventListener("submit", function (ev) {
    var msg = ev.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) { ev.preventDefault(); return; }
    var confirmInput = ev.target.querySelector("input[name=confirm]");
    if (msg && confirmInput) { confirmInput.value = "yes"; }
  });

  // Copy buttons.
  document.addEventListener("click", function (ev) {
    var target = ev.target.closest("[data-copy]");
    if (!target) { return; }
    var node = document.getElementById(target.getAttribute("data-copy"));
    if (node && navigator.clipboard) {
      navigator.clipboard.writeText(node.textContent.trim());
      target.textContent = "Copied";
    }
  });

  // The channel form adapts to the type: its config inputs and its supported modes. Choosing
  // a type resets the mode to that type's default (a mode kept from the previous type made
  // WhatsApp channels outbound-only); a mode the server sent back after an error is kept.
  function modeWarning(form, info, modeSel) {
    var warn = form.querySelector("[data-mode-warning]");
    if (!warn) { return; }
    warn.hidden = !(info && info.inbound && modeSel.value === "outbound");
  }
  function channelForm() {
    var form = document.getElementById("channel-form");
    if (!form) { return; }
    var types = JSON.parse(document.getElementById("channel-types").textContent);
    var typeSel = form.querySelector("select[name=type]");
    var modeSel = form.querySelector("select[name=mode]");
    var chosen = modeSel.getAttribute("data-chosen") || "";
    function info() {
      return types.filter(function (t) { return t.type === typeSel.value; })[0];
    }
    function apply() {
      var t = info();
      form.querySelectorAll("[data-config-for]").forEach(function (fs) {
        var on = fs.getAttribute("data-config-for") === typeSel.value;
        fs.hidden = !on;
        fs.querySelectorAll("input").forEach(function (i) { i.disabled = !on; });
      });
      if (!t) { return; }
      modeSel.innerHTML = "";
      t.modes.forEach(function (m) {
        var o = document.createElement("option");
        o.value = m; o.textContent = m;
        modeSel.appendChild(o);
      });
      modeSel.value = t.modes.indexOf(chosen) >= 0 ? chosen : t["default"];
      chosen = "";  // only the first drawing keeps the mode sent back by the server
      modeWarning(form, t, modeSel);
    }
    typeSel.addEventListener("change", apply);
    modeSel.addEventListener("change", function () { modeWarning(form, info(), modeSel); });
    apply();
  }
  function channelEditForm() {
    var form = document.getElementById("channel-edit-form");
    if (!form) { return; }
    var t = JSON.parse(document.getElementById("channel-types").textContent)[0];
    var modeSel = form.querySelector("select[name=mode]");
    modeSel.addEventListener("change", function () { modeWarning(form, t, modeSel); });
    modeWarning(form, t, modeSel);
  }

  // Middleware steps as a form: each row shows the inputs of its type; "Add a step" clones the
  // template row under the next free number; "Remove" takes a row out (the server reads the
  // rows in order, so numbers only need to be distinct).
  function stepsEditor() {
    document.querySelectorAll("[data-step-list]").forEach(function (list) {
      var box = list.closest(".steps");
      var tpl = box.querySelector("template");
      var empty = box.querySelector("[data-steps-empty]");
      var next = list.querySelectorAll("[data-step]").length;
      function show(row) {
        var kind = row.querySelector("[data-step-type]").value;
        row.querySelectorAll("[data-step-field]").forEach(function (f) {
          f.hidden = f.getAttribute("data-step-field") !== kind;
        });
      }
      function renumber() {
        var rows = list.querySelectorAll("[data-step]");
        rows.forEach(function (row, i) {
          row.querySelectorAll("[data-step-number]").forEach(function (n) { n.textContent = i + 1; });
        });
        if (empty) { empty.hidden = rows.length > 0; }
      }
      function wire(row) {
        row.querySelector("[data-step-type]").addEventListener("change", function () { show(row); });
        row.querySelector("[data-step-remove]").addEventListener("click", function () {
          var prev = row.previousElementSibling;
          row.remove();
          renumber();
          (prev ? prev.querySelector("[data-step-type]") : box.querySelector("[data-step-add]")).focus();
        });
        show(row);
      }
      list.querySelectorAll("[data-step]").forEach(wire);
      box.querySelector("[data-step-add]").addEventListener("click", function () {
        var holder = document.createElement("div");
        holder.innerHTML = tpl.innerHTML.split("__i__").join(String(next++));
        var row = holder.querySelector("[data-step]");
        list.appendChild(row);
        wire(row);
        renumber();
        row.querySelector("[data-step-type]").focus();
      });
    });
  }

  // Routing rule form: only the chosen tenant's channels.
  function ruleForm() {
    var form = document.getElementById("rule-form");
    if (!form) { return; }
    var tenantSel = form.querySelector("select[name=tenant_id]");
    function apply() {
      form.querySelectorAll("[data-tenant]").forEach(function (el) {
        var on = el.getAttribute("data-tenant") === tenantSel.value;
        el.hidden = !on;
        if (el.tagName === "OPTION") { el.disabled = !on; }
        el.querySelectorAll && el.querySelectorAll("input").forEach(function (i) {
          i.disabled = !on;
        });
      });
    }
    tenantSel.addEventListener("change", apply);
    apply();
  }

  // The live timeline: poll a small JSON endpoint every second and redraw on change.
  var TICKS = { pending: "…", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "✗", skipped: "–" };
  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) { n.className = cls; }
    if (text !== undefined && text !== null) { n.textContent = text; }
    return n;
  }
  // One status per target, with its word (not only a glyph), the error one click away (a
  // <details>), and a link to the message's deliveries.
  function drawTargets(td, a, area) {
    (a.targets || []).forEach(function (t, i) {
      if (i) { td.appendChild(document.createTextNode(" · ")); }
      var span = el("span", "target");
      span.setAttribute("data-target", t.channel);
      span.appendChild(document.createTextNode(t.channel + " "));
      var tick = el("span", "tick " + t.status, TICKS[t.status] || "?");
      tick.setAttribute("data-status", t.status);
      tick.setAttribute("aria-hidden", "true");
      span.appendChild(tick);
      span.appendChild(document.createTextNode(" "));
      span.appendChild(el("span", "status-word", t.status));
      if (t.error && (t.status === "failed" || t.status === "skipped" || t.status === "pending")) {
        var det = el("details", "err");
        det.appendChild(el("summary", null, "error"));
        det.appendChild(el("span", "mono", t.error));
        span.appendChild(document.createTextNode(" "));
        span.appendChild(det);
      }
      td.appendChild(span);
    });
    if (a.targets && a.targets.length) {
      var link = el("a", "small-link", "deliveries");
      link.href = "/" + area + "/deliveries?activity_id=" + encodeURIComponent(a.id);
      link.setAttribute("aria-label", "Deliveries of message #" + a.seq);
      td.appendChild(document.createTextNode(" "));
      td.appendChild(link);
    }
  }
  function drawTimeline(body, items, area) {
    // Details the reader opened stay open across redraws.
    var open = {};
    body.querySelectorAll("tr[data-activity]").forEach(function (tr) {
      tr.querySelectorAll("details[open]").forEach(function (d) {
        open[tr.getAttribute("data-activity") + "/" + d.parentNode.getAttribute("data-target")] = true;
      });
    });
    body.innerHTML = "";
    if (!items.length) {
      var tr = el("tr"), td = el("td", "empty", "No activities yet.");
      td.colSpan = 5; tr.appendChild(td); body.appendChild(tr);
      return;
    }
    items.forEach(function (a) {
      var tr = el("tr");
      tr.setAttribute("data-activity", a.id);
      tr.appendChild(el("td", "mono muted", "#" + a.seq));
      tr.appendChild(el("td", "mono", (a.inserted_at || "").slice(0, 19).replace("T", " ")));
      var who = el("td", null, a.sender_name || a.sender || "system");
      if (a.sender_name) {
        who.appendChild(document.createTextNode(" "));
        who.appendChild(el("span", "muted", a.sender));
      }
      tr.appendChild(who);
      tr.appendChild(el("td", null, a.text === null ? "(" + a.type + ")" : a.text));
      var td = el("td", "targets");
      drawTargets(td, a, area);
      td.querySelectorAll("details").forEach(function (d) {
        if (open[a.id + "/" + d.parentNode.getAttribute("data-target")]) { d.open = true; }
      });
      tr.appendChild(td);
      body.appendChild(tr);
    });
  }
  function timeline() {
    var table = document.getElementById("timeline");
    if (!table) { return; }
    var url = table.getAttribute("data-url");
    var area = url.split("/")[1];
    var body = table.querySelector("tbody");
    var status = document.getElementById("timeline-status");
    var last = null, count = null;
    function poll() {
      fetch(url, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (raw) {
          if (raw && raw !== last) {
            last = raw;
            var items = JSON.parse(raw).items;
            drawTimeline(body, items, area);
            // Announced to screen readers: new messages, and the targets' statuses.
            if (status && count !== null) {
              var failed = 0;
              items.forEach(function (a) {
                (a.targets || []).forEach(function (t) { if (t.status === "failed") { failed++; } });
              });
              status.textContent = items.length + " messages" +
                (failed ? ", " + failed + " failed deliveries" : "");
            }
            count = items.length;
          }
        })
        .catch(function () {})
        .then(function () { setTimeout(poll, 1000); });
    }
    poll();
  }

  // Channel health, live: each health_changed event from the server redraws the channel's row
  // of the health card (dashboards) and its dot (channels pages).
  var HEALTH = ["healthy", "degraded", "unhealthy", "unknown"];
  function drawHealth(row, h, status) {
    var cell = row.querySelector("[data-health]");
    cell.setAttribute("data-health", status);
    cell.textContent = "";
    cell.appendChild(el("span", "dot " + status));
    cell.appendChild(document.createTextNode(" " + status.charAt(0).toUpperCase() + status.slice(1)));
    row.querySelector("[data-rate]").textContent = (Number(h.failure_rate) * 100).toFixed(1) + " %";
    row.querySelector("[data-total]").textContent = h.total_deliveries;
    row.querySelector("[data-checked]").textContent =
      (h.checked_at || "").slice(0, 19).replace("T", " ");
  }
  function healthLive() {
    var table = document.querySelector("table[data-health-events]");
    if (!table || !window.EventSource) { return; }
    // EventSource reconnects by itself after the server restarts or drops the stream.
    var source = new EventSource(table.getAttribute("data-health-events"));
    source.addEventListener("health_changed", function (ev) {
      var h = JSON.parse(ev.data);
      var status = HEALTH.indexOf(h.status) >= 0 ? h.status : "unknown";
      document.querySelectorAll("#health tr[data-channel]").forEach(function (row) {
        if (row.getAttribute("data-channel") === h.channel_id) { drawHealth(row, h, status); }
      });
      document.querySelectorAll("[data-health-dot]").forEach(function (dot) {
        if (dot.getAttribute("data-health-dot") === h.channel_id) {
          dot.className = "dot " + status;
          dot.title = "health: " + status;
        }
      });
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  // Times are stored and sent in UTC; shown in the reader's own zone, the zone named.
  function localTimes() {
    document.querySelectorAll("time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (isNaN(d.getTime())) { return; }
      t.title = t.textContent;
      t.textContent = d.toLocaleString(undefined, {
        year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
        second: "2-digit", timeZoneName: "short" });
    });
  }

  // Row action menus (<details data-row-menu>): one open at a time; Escape closes the open one
  // and returns focus to its button; a click elsewhere closes it.
  function rowMenus() {
    var menus = document.querySelectorAll("details[data-row-menu]");
    if (!menus.length) { return; }
    menus.forEach(function (m) {
      m.addEventListener("toggle", function () {
        if (!m.open) { return; }
        menus.forEach(function (other) { if (other !== m) { other.open = false; } });
      });
    });
    document.addEventListener("keydown", function (ev) {
      if (ev.key !== "Escape") { return; }
      var open = document.querySelector("details[data-row-menu][open]");
      if (open) { open.open = false; open.querySelector("summary").focus(); }
    });
    document.addEventListener("click", function (ev) {
      menus.forEach(function (m) { if (m.open && !m.contains(ev.target)) { m.open = false; } });
    });
  }

  // Phones: the sidebar collapses behind a Menu button.
  function menu() {
    var toggle = document.querySelector(".menu-toggle");
    if (!toggle) { return; }
    toggle.addEventListener("click", function () {
      var side = toggle.closest(".side");
      var open = side.classList.toggle("open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }

  // A card whose table is wider than the screen scrolls inside itself: reachable by keyboard.
  function scrollables() {
    document.querySelectorAll(".card").forEach(function (card) {
      if (card.scrollWidth > card.clientWidth + 1) {
        if (!card.hasAttribute("tabindex")) {
          card.tabIndex = 0;
          card.setAttribute("role", "region");
          var h = card.querySelector("h2");
          card.setAttribute("aria-label", (h ? h.textContent.trim() : "Table") + " (scrolls sideways)");
        }
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    menu();
    scrollables();
    window.addEventListener("resize", scrollables);
    localTimes();
    channelForm();
    channelEditForm();
    stepsEditor();
    rowMenus();
    ruleForm();
    timeline();
    healthLive();
  });
})();
