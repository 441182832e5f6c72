// Financial page charts. Data comes from the json_script block "financial-data"; no inline script (CSP).
(function () {
  "use strict";

  // The key picker submits on change; its button stays for keyboard and no-script use.
  var picker = document.getElementById("key-select");
  if (picker) {
    picker.addEventListener("change", function () { picker.form.submit(); });
  }

  var source = document.getElementById("financial-data");
  if (!source || typeof Chart === "undefined") {
    return;
  }
  var data = JSON.parse(source.textContent);
  var money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
  var day = new Intl.DateTimeFormat("en-GB", { month: "short", day: "numeric", timeZone: data.tz || "UTC" });
  var stamp = new Intl.DateTimeFormat("en-GB", {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZone: data.tz || "UTC",
  });
  var palette = ["#2563eb", "#d97706", "#059669", "#7c3aed", "#db2777", "#64748b"];
  var ink = "#1f2933";
  var grid = "#e5e7eb";

  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.color = ink;
  Chart.defaults.maintainAspectRatio = false;
  Chart.defaults.animation = false;

  var zone = data.tz || "UTC";

  // On a phone a legend below the plot (five long model names) can leave the plot a few pixels tall: the box
  // grows until the plot keeps MIN_PLOT px, so bars stay readable and vertical axis titles are not cut.
  var MIN_PLOT = 140;
  Chart.register({
    id: "minPlotHeight",
    afterLayout: function (chart) {
      var box = chart.canvas.parentNode;
      var plot = chart.chartArea.bottom - chart.chartArea.top;
      if (box && plot < MIN_PLOT) {
        box.style.height = Math.ceil(box.clientHeight + MIN_PLOT - plot) + "px";  // Chart.js redraws on resize
      }
    },
  });

  // Axis titles name the quantity and its unit, so a chart reads on its own.
  function title(text) {
    return { display: true, text: text, color: "#52606d", font: { weight: "600" } };
  }

  function moneyAxis(extra, text) {
    var axis = {
      beginAtZero: true, grid: { color: grid }, title: title(text || "USD"),
      ticks: { callback: function (v) { return money.format(v); } },
    };
    return Object.assign(axis, extra || {});
  }

  // Below the plot, so a legend never covers the data (nor a threshold line).
  var legendBelow = { position: "bottom", labels: { usePointStyle: true, boxWidth: 10, padding: 14 } };

  // A lone reading gets a week around it, instead of an axis stretched over months.
  function timeAxis(points) {
    var pad = {};
    if (points && points.length === 1) {
      pad = { min: points[0].x - 3 * 86400000, max: points[0].x + 3 * 86400000 };
    }
    return {
      type: "linear",
      min: pad.min,
      max: pad.max,
      grid: { color: grid },
      title: title("Date (" + zone + ")"),
      ticks: { maxTicksLimit: 8, callback: function (v) { return day.format(new Date(v)); } },
    };
  }

  // Category axes carry ISO dates ("2026-11-05", or "week of 2026-11-02"): shown as "5 Nov".
  function dayAxis(extra, text) {
    var axis = {
      grid: { display: false },
      title: title(text || "Day (" + zone + ")"),
      ticks: {
        maxRotation: 0, autoSkip: true, maxTicksLimit: 10,
        callback: function (value) {
          var label = String(this.getLabelForValue(value));
          var iso = label.replace("week of ", "");
          var parsed = new Date(iso + "T12:00:00Z");
          return isNaN(parsed) ? label : day.format(parsed);
        },
      },
    };
    return Object.assign(axis, extra || {});
  }

  function pointLabel(ctx) {
    var raw = ctx.raw || {};
    var text = ctx.dataset.label + ": " + money.format(ctx.parsed.y);
    if (raw.amount) {
      text += " (top-up of " + money.format(raw.amount) + ")";
    }
    return text;
  }

  function timeTooltips() {
    return {
      callbacks: {
        title: function (items) { return items.length ? stamp.format(new Date(items[0].parsed.x)) : ""; },
        label: pointLabel,
      },
    };
  }

  function canvas(id) {
    return document.getElementById(id);
  }

  // Daily spend bars for the selected key.
  if (data.spend && canvas("spend-chart")) {
    new Chart(canvas("spend-chart"), {
      type: "bar",
      data: {
        labels: data.spend.labels,
        datasets: [{ label: "Spend", data: data.spend.values, backgroundColor: palette[0], borderRadius: 3 }],
      },
      options: {
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: function (c) { return "Spend: " + money.format(c.parsed.y); } } },
        },
        scales: { x: dayAxis(), y: moneyAxis(null, "Spend (USD/" + (data.spend.bucket || "day") + ")") },
      },
    });
  }

  // Remaining balance, the forecast to exhaustion (dashed) and top-ups (triangles).
  if (data.balance && canvas("balance-chart")) {
    new Chart(canvas("balance-chart"), {
      type: "line",
      data: {
        datasets: [
          {
            label: "Remaining", data: data.balance.points, borderColor: palette[0], backgroundColor: "rgba(37,99,235,0.08)",
            fill: true, pointRadius: 2, tension: 0.1, pointBackgroundColor: palette[0],
          },
          {
            label: "Forecast", data: data.balance.forecast, borderColor: "#b91c1c", borderDash: [6, 4], pointRadius: 3,
            fill: false, pointBackgroundColor: "#b91c1c",
          },
          {
            label: "Top-up", type: "scatter", data: data.balance.topups, pointStyle: "triangle", pointRadius: 8,
            backgroundColor: palette[2], borderColor: "#065f46",
          },
        ],
      },
      options: {
        parsing: true,
        plugins: { tooltip: timeTooltips(), legend: legendBelow },
        scales: {
          x: timeAxis(data.balance.forecast.length ? null : data.balance.points),
          y: moneyAxis(null, "Remaining (USD)"),
        },
      },
    });
  }

  // Account balance with top-ups (rises of total_credits) marked.
  if (data.account && canvas("account-chart")) {
    var accountSets = [
      {
        label: "Account balance", data: data.account.points, borderColor: palette[3],
        backgroundColor: "rgba(124,58,237,0.08)", fill: true, pointRadius: 2, tension: 0.1,
        pointBackgroundColor: palette[3],
      },
      {
        label: "Top-up", type: "scatter", data: data.account.topups, pointStyle: "triangle", pointRadius: 8,
        backgroundColor: palette[2], borderColor: "#065f46",
      },
    ];
    new Chart(canvas("account-chart"), {
      type: "line",
      data: { datasets: accountSets },
      options: {
        plugins: { tooltip: timeTooltips(), legend: legendBelow },
        scales: { x: timeAxis(data.account.points), y: moneyAxis(null, "Balance (USD)") },
      },
    });
  }

  // Stacked daily bars by model and by key.
  function stackedChart(id, chart, dayTitle) {
    if (!chart || !canvas(id)) {
      return;
    }
    var sets = chart.datasets.map(function (set, i) {
      return { label: set.label, data: set.data, backgroundColor: palette[i % palette.length], stack: "spend" };
    });
    new Chart(canvas(id), {
      type: "bar",
      data: { labels: chart.labels, datasets: sets },
      options: {
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 12, padding: 14 } },
          tooltip: { callbacks: { label: function (c) { return c.dataset.label + ": " + money.format(c.parsed.y); } } },
        },
        scales: { x: dayAxis({ stacked: true }, dayTitle), y: moneyAxis({ stacked: true }, "Spend (USD/day)") },
      },
    });
  }
  stackedChart("model-chart", data.models, "Day (UTC, as OpenRouter counts it)");
  stackedChart("key-chart", data.keys, data.keys_source === "checks" ? null : "Day (UTC, as OpenRouter counts it)");
  stackedChart("workspace-chart", data.workspaces, "Day (UTC, as OpenRouter counts it)");

})();
