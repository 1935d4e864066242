/* suvnet network map (back office, /staff/map).
   Leaflet comes from /static/leaflet.js (vendored from its npm package). The register is
   loaded by bounding box as the map moves (/api/v1/assets/map?bbox=...), never as one
   document; zones, sensors, alarms and the check report are small and load whole. Every
   word shown comes translated from the page (data-config). No inline code: this file is
   the page's only script besides Leaflet (Content-Security-Policy script-src 'self'). */
(function () {
  "use strict";
  var el = document.getElementById("map");
  if (!el || !window.L) { return; }
  var cfg = JSON.parse(el.getAttribute("data-config") || "{}");
  var words = cfg.words || {};
  function t(w) { return words[w] || w; }
  var api = cfg.api;
  var thisYear = new Date().getFullYear();

  var map = L.map(el, { preferCanvas: true, zoomControl: true, attributionControl: !!cfg.tiles });
  if (cfg.tiles) {
    L.tileLayer(cfg.tiles, { maxZoom: 20, attribution: cfg.attribution || "" }).addTo(map);
  }
  var ext = cfg.extent || [71.59, 40.45, 71.61, 40.47];
  map.fitBounds([[ext[1], ext[0]], [ext[3], ext[2]]], { padding: [10, 10] });
  var svg = L.svg();

  /* ---------------------------------------------------------------- pipe styles */
  var styleBy = "diameter";
  var DIAM = [[63, "#7fb8e6", 1.5], [110, "#3d8fd1", 2.5], [200, "#0b5d8f", 3.5], [1e9, "#062f4a", 5]];
  var AGE = [[10, "#2a9d3c", "< 10"], [30, "#d9b300", "10–30"], [50, "#e07b00", "30–50"], [1e9, "#c0221b", "> 50"]];
  var COND = { 1: "#2a9d3c", 2: "#8cc63f", 3: "#d9b300", 4: "#e07b00", 5: "#c0221b" };
  var PALETTE = ["#0b5d8f", "#8e44ad", "#d35400", "#16a085", "#c0392b", "#2c3e50", "#7f8c8d"];
  var materials = {};
  function materialColour(m) {
    if (!m) { return "#999"; }
    if (!(m in materials)) { materials[m] = PALETTE[Object.keys(materials).length % PALETTE.length]; }
    return materials[m];
  }
  function width(p) {
    var d = p.diameter_mm || 0;
    for (var i = 0; i < DIAM.length; i++) { if (d <= DIAM[i][0]) { return DIAM[i][2]; } }
    return 2;
  }
  function colour(p) {
    if (styleBy === "material") { return materialColour(p.material); }
    if (styleBy === "age") {
      if (!p.install_year) { return "#999"; }
      var age = thisYear - p.install_year;
      for (var i = 0; i < AGE.length; i++) { if (age < AGE[i][0]) { return AGE[i][1]; } }
    }
    if (styleBy === "condition") { return COND[p.condition_grade] || "#999"; }
    var d = p.diameter_mm || 0;
    for (var j = 0; j < DIAM.length; j++) { if (d <= DIAM[j][0]) { return DIAM[j][1]; } }
    return "#999";
  }
  var POINT_COLOURS = {
    valve: "#1c2430", prv: "#8e44ad", hydrant: "#c0221b", pump: "#d35400", well: "#16a085",
    tank: "#0b5d8f", meter_chamber: "#2a9d3c", node: "#7fb8e6", pumping_station: "#d35400",
    manhole: "#7a4a1e", sewer_pumping_station: "#7a4a1e", treatment_works: "#5b3a16"
  };
  function networkStyle(f) {
    var p = f.properties;
    if (p.system === "sewer") {
      return { color: "#9a6a3a", weight: 2, opacity: 0.8, dashArray: "6 4", fillOpacity: 0.3 };
    }
    if (p.kind === "service_connection") { return { color: "#6b7785", weight: 1 }; }
    return { color: colour(p), weight: width(p), opacity: p.status === "abandoned" ? 0.35 : 0.95,
             dashArray: p.status === "planned" ? "4 4" : null, fillOpacity: 0.3 };
  }

  /* ---------------------------------------------------------------- the layers */
  var network = L.geoJSON(null, {
    style: networkStyle,
    pointToLayer: function (f, at) {
      return L.circleMarker(at, { radius: f.properties.kind === "node" ? 2.5 : 4.5, weight: 1,
        color: "#fff", fillColor: POINT_COLOURS[f.properties.kind] || "#333", fillOpacity: 1 });
    },
    onEachFeature: function (f, layer) {
      layer.on("click", function () { openCard(f.properties.code); });
      layer.bindTooltip(f.properties.code + " · " + f.properties.kind, { sticky: true });
    }
  }).addTo(map);
  var zones = L.geoJSON(null, {
    renderer: svg,
    style: function (f) {
      var alarm = f.properties.open_alarms > 0;
      return { color: alarm ? "#c0221b" : "#0b5d8f", weight: alarm ? 3 : 1.5,
               dashArray: alarm ? null : "5 5", fillOpacity: alarm ? 0.18 : 0.03,
               fillColor: alarm ? "#c0221b" : "#0b5d8f",
               className: alarm ? "map-zone map-zone-alarm" : "map-zone" };
    },
    onEachFeature: function (f, layer) {
      var p = f.properties;
      layer.bindTooltip(p.code + (p.open_alarms ? " · " + t("Open alarms") + ": " + p.open_alarms : ""),
                        { sticky: true });
    }
  });
  var sensors = L.geoJSON(null, {
    renderer: svg,
    pointToLayer: function (f, at) {
      var p = f.properties;
      var fill = p.state === "online" ? "#2a9d3c" : (p.state === "offline" ? "#6b7785" : "#d9b300");
      return L.circleMarker(at, { renderer: svg, radius: 7, weight: p.open_alarms ? 4 : 2,
        color: p.open_alarms ? "#c0221b" : "#fff", fillColor: fill, fillOpacity: 1,
        className: p.open_alarms ? "map-sensor map-sensor-alarm" : "map-sensor" });
    },
    onEachFeature: function (f, layer) {
      var p = f.properties;
      var lines = [p.code + " (" + p.kind + ") · " + t("State") + ": " + t(p.state)];
      (p.latest || []).forEach(function (v) {
        lines.push(v.point + ": " + (v.value === null ? "–" : Number(v.value).toFixed(2)) + " " + (v.unit || ""));
      });
      if (p.open_alarms) { lines.push(t("Open alarms") + ": " + p.open_alarms); }
      layer.bindTooltip(lines.map(escapeHtml).join("<br>"));
    }
  });
  var alarms = L.geoJSON(null, {
    renderer: svg,
    style: function () {
      return { color: "#c0221b", weight: 4, fillOpacity: 0.1, className: "map-alarm-zone" };
    },
    pointToLayer: function (f, at) {
      return L.circleMarker(at, { renderer: svg, radius: 11, weight: 3, color: "#c0221b",
        fill: false, className: "map-alarm" });
    },
    onEachFeature: function (f, layer) {
      var p = f.properties;
      layer.bindTooltip(escapeHtml(p.priority + " · " + p.kind + (p.zone ? " · " + p.zone : "") +
                        (p.message ? " — " + p.message : "")), { sticky: true });
    }
  });
  var checks = L.geoJSON(null, {
    renderer: svg,
    pointToLayer: function (f, at) {
      return L.circleMarker(at, { renderer: svg, radius: 6, weight: 2, color: "#e07b00",
        fillColor: "#ffd27f", fillOpacity: 0.9, className: "map-finding" });
    },
    onEachFeature: function (f, layer) {
      var p = f.properties;
      layer.bindTooltip(escapeHtml(t("Finding") + ": " + p.check + " · " + p.code));
      layer.on("click", function () { openCard(p.code); });
    }
  });
  var overlays = { zones: zones, sensors: sensors, alarms: alarms, checks: checks };

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  /* ---------------------------------------------------------------- loading */
  var statusEl = document.getElementById("map-status");
  var pending = null;
  var timer = null;
  function wanted() {
    var out = [];
    document.querySelectorAll(".map-layers input[data-layer]").forEach(function (box) {
      if (box.checked) { out.push(box.getAttribute("data-layer")); }
    });
    return out;
  }
  function getJson(url, signal) {
    return fetch(url, { credentials: "same-origin", signal: signal, headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status + " " + url); } return r.json(); });
  }
  function loadNetwork() {
    var sel = wanted().filter(function (l) { return l === "water" || l === "sewer" || l === "services"; });
    if (pending) { pending.abort(); }
    network.clearLayers();
    if (!sel.length) { statusEl.textContent = ""; return; }
    pending = new AbortController();
    var b = map.getBounds();
    var bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (v) { return v.toFixed(6); });
    statusEl.textContent = t("Loading...");
    el.setAttribute("data-loading", "1");
    getJson(api + "/map?bbox=" + bbox.join(",") + "&layers=" + sel.join(",") + "&limit=4000", pending.signal)
      .then(function (fc) {
        network.addData(fc);
        statusEl.textContent = fc.features.length + " " + t("pipes shown") +
          (fc.truncated ? " · " + t("Zoom in to see every pipe") : "");
        el.setAttribute("data-loaded", String(fc.features.length));
        el.removeAttribute("data-loading");
      })
      .catch(function (e) { if (e.name !== "AbortError") { statusEl.textContent = String(e.message); } });
  }
  function schedule() { clearTimeout(timer); timer = setTimeout(loadNetwork, 150); }
  function loadOverlays() {
    var on = wanted();
    Object.keys(overlays).forEach(function (name) {
      var layer = overlays[name];
      if (on.indexOf(name) < 0) { map.removeLayer(layer); return; }
      getJson(api + "/map/" + name).then(function (fc) {
        layer.clearLayers();
        layer.addData(fc);
        layer.addTo(map);
        if (name === "zones") { layer.bringToBack(); }
        el.setAttribute("data-" + name, String(fc.features.length));
      }).catch(function (e) { statusEl.textContent = String(e.message); });
    });
  }
  map.on("moveend", schedule);
  document.querySelectorAll(".map-layers input[data-layer]").forEach(function (box) {
    box.addEventListener("change", function () { loadNetwork(); loadOverlays(); });
  });
  document.getElementById("map-style").addEventListener("change", function (ev) {
    styleBy = ev.target.value;
    network.setStyle(networkStyle);
    legend();
  });

  /* ---------------------------------------------------------------- legend */
  function legend() {
    var box = document.getElementById("map-legend");
    box.textContent = "";
    var rows = [];
    if (styleBy === "diameter") {
      rows = [["≤ 63 " + t("mm"), DIAM[0][1]], ["≤ 110 " + t("mm"), DIAM[1][1]], ["≤ 200 " + t("mm"), DIAM[2][1]], ["> 200 " + t("mm"), DIAM[3][1]]];
    } else if (styleBy === "age") {
      rows = AGE.map(function (a) { return [a[2] + " " + t("years"), a[1]]; });
    } else if (styleBy === "condition") {
      rows = [1, 2, 3, 4, 5].map(function (g) { return [t("Condition") + " " + g, COND[g]]; });
    } else {
      rows = Object.keys(materials).map(function (m) { return [m, materials[m]]; });
    }
    rows.forEach(function (r) {
      var item = document.createElement("div");
      var sw = document.createElement("span");
      sw.className = "map-swatch";
      sw.style.backgroundColor = r[1];  /* CSSOM, not a style attribute: allowed by the CSP */
      item.appendChild(sw);
      item.appendChild(document.createTextNode(" " + r[0]));
      box.appendChild(item);
    });
  }

  /* ---------------------------------------------------------------- the asset card */
  var cardEl = document.getElementById("map-card");
  function row(table, name, value) {
    if (value === null || value === undefined || value === "") { return; }
    var tr = document.createElement("tr");
    var th = document.createElement("th");
    var td = document.createElement("td");
    th.textContent = name;
    td.textContent = String(value);
    tr.appendChild(th); tr.appendChild(td); table.appendChild(tr);
  }
  var lang = document.documentElement.lang || "ru";
  function when(iso) {
    /* times are stored in UTC and shown in Tashkent, as everywhere in suvnet */
    try {
      return new Date(iso).toLocaleString(lang, { timeZone: "Asia/Tashkent", year: "numeric",
        month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" }) + " (" + t("Tashkent time") + ")";
    } catch (e) { return String(iso); }
  }
  function openCard(code) {
    cardEl.textContent = t("Loading...");
    getJson(api + "/" + encodeURIComponent(code)).then(function (c) {
      cardEl.textContent = "";
      var h = document.createElement("h2");
      h.textContent = c.code;
      cardEl.appendChild(h);
      var table = document.createElement("table");
      table.className = "map-card-fields";
      row(table, t("Kind"), c.kind);
      row(table, t("Status"), c.status);
      row(table, t("Diameter"), c.diameter_mm ? c.diameter_mm + " " + t("mm") : "");
      row(table, t("Material"), c.material);
      row(table, t("Install year"), c.install_year);
      row(table, t("Condition"), c.condition_grade);
      row(table, t("Zone"), c.zone);
      row(table, "CRS", c.source_crs + (c.accuracy_m !== null ? " ± " + c.accuracy_m + " m" : ""));
      cardEl.appendChild(table);
      (c.sensors || []).forEach(function (s) {
        var p = document.createElement("p");
        p.className = s.open_alarms ? "error" : "muted";
        p.textContent = s.code + " · " + t("State") + ": " + t(s.state) +
          (s.open_alarms ? " · " + t("Open alarms") + ": " + s.open_alarms : "");
        cardEl.appendChild(p);
      });
      var hh = document.createElement("h3");
      hh.textContent = t("History");
      cardEl.appendChild(hh);
      var list = document.createElement("ol");
      list.className = "map-history";
      (c.history || []).slice(0, 6).forEach(function (v) {
        var li = document.createElement("li");
        var changes = Object.keys(v.changes || {}).map(function (k) {
          var pair = v.changes[k];
          return k === "geom_wkb" ? "geometry" : k + ": " + JSON.stringify(pair[0]) + " → " + JSON.stringify(pair[1]);
        }).join("; ");
        li.textContent = "v" + v.version + " · " + when(v.changed_at) +
          " · " + v.changed_by + (changes ? " · " + changes : " · " + v.op);
        list.appendChild(li);
      });
      if (!list.childNodes.length) { list.textContent = t("No history"); }
      cardEl.appendChild(list);
      var actions = document.createElement("div");
      actions.className = "map-actions";
      var a = document.createElement("a");
      a.className = "btn";
      a.href = "/staff/assets/" + encodeURIComponent(c.code);
      a.textContent = t("Open card");
      actions.appendChild(a);
      if (c.kind === "pipe" && c.status !== "abandoned") {
        var iso = document.createElement("button");
        iso.type = "button";
        iso.className = "map-isolate";
        iso.textContent = t("Isolate");
        iso.addEventListener("click", function () { isolate("pipe=" + encodeURIComponent(c.code), c.code); });
        actions.appendChild(iso);
      }
      cardEl.appendChild(actions);
      el.setAttribute("data-card", c.code);
    }).catch(function (e) { cardEl.textContent = String(e.message); });
  }

  /* ---------------------------------------------------------------- search */
  document.getElementById("map-search").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var q = document.getElementById("map-q").value.trim();
    var out = document.getElementById("map-found");
    out.textContent = "";
    if (!q) { return; }
    getJson(api + "/search?q=" + encodeURIComponent(q)).then(function (r) {
      if (!r.items.length) { out.textContent = t("Nothing found."); return; }
      r.items.forEach(function (it) {
        var li = document.createElement("li");
        var b = document.createElement("button");
        b.type = "button";
        b.className = "link";
        b.textContent = it.code + " · " + it.kind;
        b.addEventListener("click", function () {
          map.setView([it.lat, it.lon], 17, { animate: false });
          openCard(it.code);
        });
        li.appendChild(b);
        out.appendChild(li);
      });
    });
  });

  /* ---------------------------------------------------------------- valve isolation */
  /* The isolation of a pipe (its card's button, ?isolate_pipe=) or of a leak or burst alarm
     (the alarm page's button, ?isolate_alarm=): the pipes without water and the valves by
     role on the map; the valves to close and the subscribers (critical customers first)
     listed for customer service. */
  var isoEl = document.getElementById("map-isolation");
  var ISO_COLOURS = { drained: "#c0221b", cut_off: "#e07b00", close: "#c0221b", skipped: "#6b7785",
                      not_needed: "#2a9d3c", already_closed: "#1c2430" };
  var isolation = L.geoJSON(null, {
    renderer: svg,
    style: function (f) {
      return { color: ISO_COLOURS[f.properties.role] || "#c0221b", weight: 6, opacity: 0.75,
               className: "map-iso-pipe map-iso-" + f.properties.role };
    },
    pointToLayer: function (f, at) {
      var role = f.properties.role;
      return L.circleMarker(at, { renderer: svg, radius: role === "close" ? 9 : 7, weight: 3,
        color: ISO_COLOURS[role] || "#333", fillColor: "#fff", fillOpacity: 1,
        className: "map-iso-valve map-iso-" + role });
    },
    onEachFeature: function (f, layer) {
      var p = f.properties;
      layer.bindTooltip(escapeHtml(p.valve ? p.valve + " · " + t("valve_" + p.role) : p.pipe), { sticky: true });
    }
  });
  function el2(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function showIsolation(ans, title, offer) {
    isolation.clearLayers();
    isolation.addData(ans.geojson);
    isolation.addTo(map);
    var b = isolation.getBounds();
    if (b.isValid()) { map.fitBounds(b, { padding: [30, 30], maxZoom: 18 }); }
    isoEl.textContent = "";
    isoEl.hidden = false;
    isoEl.appendChild(el2("h2", null, t("Valve isolation")));
    isoEl.appendChild(el2("p", "muted", title));
    if (offer) { isoEl.appendChild(el2("p", "error", offer)); }
    isoEl.appendChild(el2("h3", null, t("Valves to close")));
    var ul = el2("ul", "map-iso-close");
    (ans.close || []).forEach(function (c) { ul.appendChild(el2("li", null, c)); });
    isoEl.appendChild(ul);
    if ((ans.skipped || []).length) {
      isoEl.appendChild(el2("p", "muted", t("Passed over (cannot be closed)") + ": " + ans.skipped.join(", ")));
    }
    var c = ans.counts || {};
    var facts = el2("p", "map-iso-facts");
    facts.textContent = t("Subscribers without water") + ": " + c.accounts + " · " + t("Critical customers") + ": " +
      c.critical + " · " + t("Addresses") + ": " + c.addresses + " · " + t("Pipes without water, m") + ": " +
      Math.round(ans.length_m || 0);
    isoEl.appendChild(facts);
    (ans.warnings || []).forEach(function (w) {
      if (w.code === "unlinked_accounts") {
        isoEl.appendChild(el2("p", "muted", t("Accounts of zone %(zone)s without a service connection in the register: %(n)s")
          .replace("%(zone)s", w.zone).replace("%(n)s", w.accounts)));
      }
    });
    var table = el2("table", "map-iso-accounts");
    table.id = "map-iso-accounts";
    var head = el2("tr");
    [t("Account"), t("Name"), t("Address")].forEach(function (h) { head.appendChild(el2("th", null, h)); });
    var thead = el2("thead"); thead.appendChild(head); table.appendChild(thead);
    var tbody = el2("tbody");
    (ans.accounts || []).forEach(function (a) {
      var tr = el2("tr", a.critical ? "critical" : null);
      tr.appendChild(el2("td", null, a.number));
      var name = el2("td", null, a.name);
      if (a.critical) {
        name.appendChild(document.createElement("br"));
        name.appendChild(el2("span", "map-critical", (cfg.critical || {})[a.critical] || (cfg.critical || {}).other));
      }
      if (a.phone) {
        name.appendChild(document.createElement("br"));
        name.appendChild(el2("span", "muted", t("Phone") + ": " + a.phone));
      }
      tr.appendChild(name);
      tr.appendChild(el2("td", null, a.address));
      tbody.appendChild(tr);
    });
    table.appendChild(tbody);
    isoEl.appendChild(table);
    var actions = el2("div", "map-actions");
    var clear = el2("button", null, t("Clear"));
    clear.type = "button";
    clear.addEventListener("click", function () {
      isolation.clearLayers(); map.removeLayer(isolation); isoEl.hidden = true; el.removeAttribute("data-isolation");
    });
    actions.appendChild(clear);
    if ((ans.pipes || []).length) {
      var sheet = el2("a", "btn", t("Route-map sheet (PDF)"));
      sheet.href = api + "/sheets.pdf?paper=A3&lang=" + encodeURIComponent(cfg.lang || "") + "&route=" +
        encodeURIComponent(ans.pipes.map(function (p) { return p.code; }).slice(0, 300).join(","));
      actions.appendChild(sheet);
    }
    isoEl.appendChild(actions);
    el.setAttribute("data-isolation", String((ans.close || []).length) + ":" + String(c.accounts));
  }
  function isolate(query, title) {
    isoEl.hidden = false;
    isoEl.textContent = t("Loading...");
    fetch(api + "/isolation?" + query + "&lang=" + encodeURIComponent(cfg.lang || "uz"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json().then(function (body) { return [r.status, body]; }); })
      .then(function (res) {
        var status = res[0], body = res[1];
        if (status === 200) { showIsolation(body, title, null); return; }
        if (body.error === "no_isolating_valves" && body.offer) {
          showIsolation(body.offer, title, t("No valve can isolate this pipe: the zone's boundary valves would isolate it."));
          el.setAttribute("data-isolation-offer", body.zone || "");
          return;
        }
        isoEl.textContent = "";
        isoEl.appendChild(el2("p", "error", t("The isolation cannot be computed for this.")));
        el.setAttribute("data-isolation", "error");
      })
      .catch(function (e) { isoEl.textContent = String(e.message); });
  }

  /* ---------------------------------------------------------------- renewal ranking */
  var renewalEl = document.getElementById("map-renewal");
  var RANK_COLOURS = [[5, "#7b0d0d"], [20, "#c0221b"], [50, "#e07b00"], [1e9, "#d9b300"]];
  function rankColour(rank) {
    for (var i = 0; i < RANK_COLOURS.length; i++) { if (rank <= RANK_COLOURS[i][0]) { return RANK_COLOURS[i][1]; } }
    return "#d9b300";
  }
  var renewal = L.geoJSON(null, {
    renderer: svg,
    style: function (f) {
      return { color: rankColour(f.properties.rank), weight: 7, opacity: 0.8, className: "map-renewal-pipe" };
    },
    onEachFeature: function (f, layer) {
      var p = f.properties;
      layer.bindTooltip(escapeHtml(t("Rank") + " " + p.rank + " · " + p.code + " · " + t("Score") + " " +
        Number(p.score).toFixed(2) + " · " + t("Subscribers cut off") + ": " + p.accounts), { sticky: true });
      layer.on("click", function () { openCard(p.code); });
    }
  });
  var renewalBox = document.getElementById("map-renewal-box");
  function loadRenewal() {
    if (!renewalBox.checked) {
      map.removeLayer(renewal); renewalEl.hidden = true; el.removeAttribute("data-renewal"); return;
    }
    getJson(api + "/renewal?limit=50&geometry=true").then(function (r) {
      renewal.clearLayers();
      renewal.addData(r.geojson);
      renewal.addTo(map);
      renewalEl.textContent = "";
      renewalEl.hidden = false;
      renewalEl.appendChild(el2("h2", null, t("Renewal ranking")));
      var ol = el2("ol");
      r.pipes.slice(0, 10).forEach(function (p) {
        var li = el2("li");
        var b = el2("button", "link", p.code);
        b.type = "button";
        b.addEventListener("click", function () { openCard(p.code); });
        li.appendChild(b);
        li.appendChild(document.createTextNode(" · " + t("Score") + " " + Number(p.score).toFixed(2) +
          " · " + t("Subscribers cut off") + ": " + p.accounts));
        ol.appendChild(li);
      });
      renewalEl.appendChild(ol);
      var xlsx = el2("a", "btn", t("Workbook (XLSX)"));
      xlsx.href = api + "/renewal.xlsx?lang=" + encodeURIComponent(cfg.lang || "");
      renewalEl.appendChild(xlsx);
      el.setAttribute("data-renewal", String(r.geojson.features.length));
    }).catch(function (e) { statusEl.textContent = String(e.message); });
  }
  renewalBox.addEventListener("change", loadRenewal);

  legend();
  loadNetwork();
  loadOverlays();
  setInterval(loadOverlays, 60000);
  var params = new URLSearchParams(window.location.search);
  if (params.get("isolate_alarm")) {
    isolate("alarm=" + encodeURIComponent(params.get("isolate_alarm")),
            t("Alarm") + " #" + params.get("isolate_alarm"));
  } else if (params.get("isolate_pipe")) {
    isolate("pipe=" + encodeURIComponent(params.get("isolate_pipe")), params.get("isolate_pipe"));
  }
  window.suvnetMap = { map: map, openCard: openCard, isolate: isolate };
}());
