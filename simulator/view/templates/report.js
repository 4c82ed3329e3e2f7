(function () {
  "use strict";
  var bodies = new Map();
  var unpacked = new Map();
  var texts = new Map();
  var filters = { persona: "", reason: "", repair: "", text: "" };
  var generation = 0;

  document.querySelectorAll("script.session-data").forEach(function (node) {
    bodies.set(node.getAttribute("data-for"), node);
  });

  // A session body: gzipped JSON in base64, unpacked once, on first use.
  function data(key) {
    var node = bodies.get(key);
    if (!node) { return Promise.resolve(null); }
    if (!unpacked.has(key) && typeof DecompressionStream === "undefined") {
      return Promise.reject(new Error("no DecompressionStream"));
    }
    if (!unpacked.has(key)) {
      var binary = atob(node.textContent.trim());
      var bytes = new Uint8Array(binary.length);
      for (var i = 0; i < binary.length; i += 1) { bytes[i] = binary.charCodeAt(i); }
      var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
      unpacked.set(key, new Response(stream).text().then(JSON.parse));
    }
    return unpacked.get(key);
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function sectionText(sections) {
    return sections.map(function (s) { return (s.h || "") + "\n" + (s.b ? s.b.join("\n") : s.p); }).join("\n");
  }

  function searchable(key) {
    if (!texts.has(key)) {
      texts.set(key, data(key).then(function (d) {
        if (!d) { return ""; }
        return d.messages.map(function (m) { return m.t; }).concat([sectionText(d.summary)]).join("\n").toLowerCase();
      }, function () { return ""; }));
    }
    return texts.get(key);
  }

  function highlight(parent, text, cls, needle) {
    if (!needle) { parent.appendChild(document.createTextNode(text)); return; }
    var lower = text.toLowerCase();
    var at = 0;
    for (;;) {
      var hit = lower.indexOf(needle, at);
      if (hit < 0) { break; }
      parent.appendChild(document.createTextNode(text.slice(at, hit)));
      parent.appendChild(el("mark", cls, text.slice(hit, hit + needle.length)));
      at = hit + needle.length;
    }
    parent.appendChild(document.createTextNode(text.slice(at)));
  }

  function messageText(m) {
    var p = el("div", "text");
    var needle = filters.text;
    if (m.e) {
      highlight(p, m.t.slice(0, m.e[0]), "hit", needle);
      var end = el("mark", "end-phrase");
      end.title = "end phrase that ended the session";
      highlight(end, m.t.slice(m.e[0], m.e[1]), "hit", needle);
      p.appendChild(end);
      highlight(p, m.t.slice(m.e[1]), "hit", needle);
    } else {
      highlight(p, m.t, "hit", needle);
    }
    return p;
  }

  function flags(list, cls, label) {
    var box = el("div", "flags " + cls);
    box.appendChild(el("span", "flags-label", label));
    list.forEach(function (f) { box.appendChild(el("span", "flag " + cls, f)); });
    return box;
  }

  function bubble(m) {
    var b = el("div", "msg " + m.s.toLowerCase() + (m.r ? " repaired" : "") + (m.end ? " ended" : ""));
    b.setAttribute("data-index", m.i);
    var head = el("div", "who");
    head.appendChild(el("b", null, m.s));
    head.appendChild(el("span", "muted", " #" + m.i + (m.m ? " · " + m.m : "") + (m.f ? " · finish: " + m.f : "")));
    b.appendChild(head);
    b.appendChild(messageText(m));
    if (m.r) { b.appendChild(flags(m.r, "repair", "repaired:")); }
    if (m.o) { b.appendChild(flags(m.o, "origin", "origin:")); }
    if (m.end) { b.appendChild(el("div", "ended-note", m.e ? "this message ended the session" : "the session ended at this message")); }
    return b;
  }

  function summaryBlock(title, sections, cls) {
    var box = el("div", "summary " + cls);
    box.appendChild(el("h4", null, title));
    if (!sections.length) { box.appendChild(el("p", "empty", "none")); }
    sections.forEach(function (s) {
      if (s.h) { box.appendChild(el("h5", null, s.h)); }
      if (s.b) {
        var ul = el("ul");
        s.b.forEach(function (item) { highlight(ul.appendChild(el("li")), item, "hit", filters.text); });
        box.appendChild(ul);
      } else {
        highlight(box.appendChild(el("p", "raw")), s.p, "hit", filters.text);
      }
    });
    return box;
  }

  function render(details) {
    var body = details.querySelector(".body");
    if (!body) { return Promise.resolve(); }
    return data(details.getAttribute("data-session")).then(function (d) { if (d) { lay(body, d); } }, function (err) {
      body.textContent = "";
      body.appendChild(el("p", "problem", "This session could not be unpacked here (" + err + "). The page needs a browser " +
        "with DecompressionStream: Chromium 80, Firefox 113, Safari 16.4 or newer."));
    });
  }

  function lay(body, d) {
    body.textContent = "";
    body.removeAttribute("data-empty");
    var meta = d.meta;
    var models = Object.keys(meta.models).map(function (r) { return r + " " + meta.models[r]; }).join(", ");
    var tokens = Object.keys(meta.tokens).map(function (r) { return r + " " + meta.tokens[r].toLocaleString(); }).join(", ");
    body.appendChild(el("p", "meta", [meta.status, "backend " + meta.backend, models, meta.seed !== null ? "seed " + meta.seed : "",
      meta.started + (meta.ended ? " → " + meta.ended : ""), tokens ? "tokens: " + tokens : ""].filter(Boolean).join(" · ")));
    var opening = el("div", "opening");
    opening.appendChild(d.prev.length ? summaryBlock("Previous summary", d.prev, "prev") : el("div", "summary prev none", "First session of the series: no previous summary."));
    var chat = el("div", "chat");
    d.messages.forEach(function (m, i) { (i === 0 ? opening : chat).appendChild(bubble(m)); });
    if (!d.messages.length) { opening.appendChild(el("p", "empty", "No messages.")); }
    body.appendChild(opening);
    body.appendChild(chat);
    if (d.ending) {
      var end = el("div", "ending");
      end.appendChild(el("b", null, d.ending.reason));
      end.appendChild(el("span", null, " " + d.ending.details));
      body.appendChild(end);
    }
    if (meta.error) { body.appendChild(el("p", "problem", meta.error)); }
    body.appendChild(summaryBlock("Session summary", d.summary, "final"));
    if (d.summaryRepairs.length) { body.appendChild(flags(d.summaryRepairs, "repair", "summary repaired:")); }
    if (d.summaryOrigins.length) { body.appendChild(flags(d.summaryOrigins, "origin", "summary origin:")); }
  }

  function matches(node, text) {
    var f = filters;
    if (f.persona && node.getAttribute("data-persona") !== f.persona) { return false; }
    if (f.reason && node.getAttribute("data-reason") !== f.reason) { return false; }
    var repairs = node.getAttribute("data-repairs");
    if (f.repair === "*" && !repairs) { return false; }
    if (f.repair && f.repair !== "*" && repairs.split(" ").indexOf(f.repair) < 0) { return false; }
    if (f.text && text.indexOf(f.text) < 0) { return false; }
    return true;
  }

  // Free text needs every session's words: unpack them all (once), then filter.
  function apply() {
    var mine = ++generation;
    var keys = Array.from(document.querySelectorAll("a.card[data-session]"), function (a) { return a.getAttribute("data-session"); });
    var count = document.getElementById("f-count");
    if (filters.text) { count.textContent = "searching…"; }
    var words = filters.text ? Promise.all(keys.map(searchable)) : Promise.resolve(keys.map(function () { return ""; }));
    return words.then(function (found) {
      if (mine !== generation) { return; }
      var text = new Map(keys.map(function (k, i) { return [k, found[i]]; }));
      var shown = 0;
      document.querySelectorAll("article.persona").forEach(function (article) {
        var any = false;
        article.querySelectorAll("[data-session]").forEach(function (node) {
          var ok = matches(node, text.get(node.getAttribute("data-session")) || "");
          node.closest("li, details").hidden = !ok;
          if (node.tagName === "A") { shown += ok ? 1 : 0; }
          any = any || ok;
          if (ok && node.tagName === "DETAILS" && node.open) { render(node); }
        });
        article.hidden = !any && (filters.persona !== "" || filters.reason !== "" || filters.repair !== "" || filters.text !== "");
      });
      count.textContent = shown + " of " + keys.length + " sessions";
    });
  }

  function open(hash) {
    var target = hash && document.getElementById(decodeURIComponent(hash.slice(1)));
    if (target && target.tagName === "DETAILS") {
      target.open = true;
      target.scrollIntoView({ block: "start" });
    }
  }

  document.querySelectorAll("details.session").forEach(function (details) {
    details.addEventListener("toggle", function () {
      if (details.open && details.querySelector(".body[data-empty]")) { render(details); }
    });
  });

  var timer = null;
  [["f-persona", "persona"], ["f-reason", "reason"], ["f-repair", "repair"], ["f-text", "text"]].forEach(function (pair) {
    var input = document.getElementById(pair[0]);
    function changed() {
      filters[pair[1]] = pair[1] === "text" ? input.value.trim().toLowerCase() : input.value;
      clearTimeout(timer);
      timer = setTimeout(apply, pair[1] === "text" ? 150 : 0);
    }
    input.addEventListener("input", changed);
    input.addEventListener("change", changed);
  });
  document.getElementById("f-reset").addEventListener("click", function () {
    ["f-persona", "f-reason", "f-repair", "f-text"].forEach(function (id) { document.getElementById(id).value = ""; });
    filters = { persona: "", reason: "", repair: "", text: "" };
    apply();
  });
  window.addEventListener("hashchange", function () { open(location.hash); });
  open(location.hash);
  document.documentElement.setAttribute("data-ready", "1");
})();
