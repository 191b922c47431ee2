// The analytics page: draws the report embedded in #analytics-data with uPlot (vendored,
// uplot.min.js) and refreshes it from analytics.json every 30 seconds while the page is open.
(function () {
  "use strict";
  var REFRESH_MS = 30000;
  var SERIES = {
    activities: [["in", "Activities in", "#2563eb"], ["out", "Activities out", "#16a34a"]],
    deliveries: [["sent", "Sent", "#0ea5e9"], ["delivered", "Delivered", "#16a34a"],
                 ["read", "Read", "#7c3aed"], ["failed", "Failed", "#dc2626"],
                 ["skipped", "Skipped", "#9ca3af"]]
  };
  var charts = {};

  function columns(data, name) {
    var xs = data.buckets.map(function (b) { return Date.parse(b) / 1000; });
    var group = data[name];
    return [xs].concat(SERIES[name].map(function (s) { return group[s[0]]; }));
  }

  function width(node) { return Math.max(320, node.clientWidth || node.parentNode.clientWidth - 32); }

  function draw(data) {
    Object.keys(SERIES).forEach(function (name) {
      var node = document.querySelector("[data-chart=" + name + "]");
      if (!node) { return; }
      var cols = columns(data, name);
      if (charts[name]) {
        charts[name].setData(cols);
      } else {
        var series = [{}].concat(SERIES[name].map(function (s) {
          return {label: s[1], stroke: s[2], width: 2, fill: s[2] + "22", points: {show: false}};
        }));
        charts[name] = new uPlot({
          width: width(node), height: 240, series: series, scales: {y: {range: function (u, lo, hi) {
            return [0, Math.max(1, hi) * 1.1]; }}},
          axes: [{}, {size: 50}]
        }, cols, node);
      }
      var total = cols.slice(1).reduce(function (n, ys) {
        return n + ys.reduce(function (a, b) { return a + b; }, 0); }, 0);
      node.setAttribute("data-points", String(cols[0].length));
      node.setAttribute("data-sum", String(total));
      node.setAttribute("data-range", data.range);
    });
    Object.keys(data.totals).forEach(function (key) {
      var cell = document.querySelector("[data-total=" + key + "]");
      var value = data.totals[key];
      if (!cell) { return; }
      cell.textContent = key === "success_rate"
        ? (value === null ? "—" : (value * 100).toFixed(1) + " %") : String(value);
    });
  }

  function refresh() {
    if (document.hidden) { return; }
    var url = location.pathname + ".json" + location.search;
    fetch(url, {credentials: "same-origin", headers: {accept: "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) { if (body && body.data) { draw(body.data); } })
      .catch(function () { /* the next tick tries again */ });
  }

  function start() {
    var source = document.getElementById("analytics-data");
    if (!source || typeof uPlot === "undefined") { return; }
    draw(JSON.parse(source.textContent));
    window.setInterval(refresh, REFRESH_MS);
    window.addEventListener("analytics-refresh", refresh);  // now, not at the next tick
    window.addEventListener("resize", function () {
      Object.keys(charts).forEach(function (name) {
        var node = document.querySelector("[data-chart=" + name + "]");
        charts[name].setSize({width: width(node), height: 240});
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
