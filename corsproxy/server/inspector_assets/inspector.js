"use strict";
// The corsproxy inspector: polls /__corsproxy/events?after=ID and shows the requests, newest
// first. Every value from the proxy is put in the page with textContent, never as HTML.
(function () {
  const EVENTS = "/__corsproxy/events";
  const POLL_MS = 400;
  const ALLOWED = new Set(["cors", "preflight", "no-origin", "same-origin", "pass-through"]);
  const state = { events: new Map(), last: 0, size: 500, selected: null };
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  // --- fetching ---------------------------------------------------------------------------------

  async function poll() {
    try {
      const response = await fetch(`${EVENTS}?after=${state.last}`, { cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const data = await response.json();
      showEnabled(data);
      if (data.latest < state.last) {           // the proxy restarted: ids begin again
        state.events.clear();
        state.last = 0;
        return;
      }
      for (const event of data.events) {
        state.events.set(event.id, event);
        state.last = Math.max(state.last, event.id);
      }
      state.size = data.size || state.size;
      while (state.events.size > state.size) state.events.delete(state.events.keys().next().value);
      setStatus("live", data.enabled ? "live" : "off");
      if (data.events.length) render();
    } catch (error) {
      setStatus("disconnected", `proxy not reachable (${error.message}); retrying`);
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  function setStatus(kind, text) {
    const node = $("status");
    node.dataset.state = kind;
    node.textContent = text;
  }

  function showEnabled(data) {
    const off = $("off");
    off.hidden = data.enabled;
    if (!data.enabled) {
      off.textContent = "The inspector is off: server.inspector_size is 0" +
        (data.source ? ` (${data.source})` : "") + ". Set it to the number of requests to keep, e.g. 500.";
    }
  }

  // --- the list ---------------------------------------------------------------------------------

  function visible(event) {
    if ($("only-refusals").checked && ALLOWED.has(event.decision)) return false;
    const route = $("route-filter").value;
    if (route && (event.route || "(no route)") !== route) return false;
    const origin = $("origin-filter").value;
    if (origin && (event.origin || "(none)") !== origin) return false;
    const path = $("path-filter").value.trim();
    return !path || event.path.includes(path);
  }

  // A preflight is shown under the actual request that followed it (its preflight_id).
  function groups() {
    const followed = new Set();
    for (const event of state.events.values()) {
      if (event.preflight_id) followed.add(event.preflight_id);
    }
    const list = [];
    for (const event of state.events.values()) {
      if (followed.has(event.id) && state.events.has(event.id)) continue;
      const preflight = event.preflight_id ? state.events.get(event.preflight_id) : null;
      list.push({ main: event, preflight });
    }
    return list.reverse();
  }

  // The list shows a source as file:line without its folders; the detail view shows it whole.
  const shortSource = (source) => (source ? source.split("/").pop() : "—");

  function row(event, isPreflight) {
    const tr = el("tr", { "data-id": event.id, "data-decision": event.decision,
                          class: `${event.decision}${isPreflight ? " preflight" : ""}` },
      el("td", { text: event.time.slice(11, 23) }),
      el("td", { text: event.method }),
      el("td", { class: "path", text: (event.intercepted || "") + event.path,
                 title: (event.intercepted ? "intercepted: " + event.intercepted : "") + event.path }),
      el("td", { class: "status", text: String(event.status) }),
      el("td", {}, el("span", { class: `badge ${event.decision}`, text: event.decision })),
      el("td", { class: "origin", text: event.origin || "—", title: event.origin || "" }),
      el("td", { class: "route", text: `${event.route || "no route"} (${shortSource(event.source)})`,
                 title: event.source || "" }),
      el("td", { text: event.duration_ms.toFixed(1) }));
    if (state.selected === event.id) tr.classList.add("selected");
    tr.addEventListener("click", () => select(event.id));
    return tr;
  }

  function render() {
    refreshOptions();
    const rows = [];
    for (const { main, preflight } of groups()) {
      if (!visible(main) && !(preflight && visible(preflight))) continue;
      rows.push(row(main, main.preflight));
      if (preflight) rows.push(row(preflight, true));
    }
    $("rows").replaceChildren(...rows);
    $("empty").hidden = rows.length > 0;
    if (state.selected !== null) showDetail(state.events.get(state.selected));
  }

  function refreshOptions() {
    for (const [id, pick] of [["route-filter", (e) => e.route || "(no route)"],
                              ["origin-filter", (e) => e.origin || "(none)"]]) {
      const select = $(id);
      const known = new Set([...select.options].map((o) => o.value));
      for (const event of state.events.values()) {
        const value = pick(event);
        if (!known.has(value)) {
          known.add(value);
          select.append(el("option", { value, text: value }));
        }
      }
    }
  }

  // --- the detail view --------------------------------------------------------------------------

  function select(id) {
    state.selected = id;
    for (const tr of $("rows").children) tr.classList.toggle("selected", Number(tr.dataset.id) === id);
    showDetail(state.events.get(id));
  }

  function headerList(pairs, filter) {
    const shown = pairs.filter(([name, value]) => value !== null && (!filter || filter(name.toLowerCase())));
    if (!shown.length) return el("p", { class: "muted", text: "none" });
    const dl = el("dl", { class: "headers" });
    for (const [name, value] of shown) dl.append(el("dt", { text: name }), el("dd", { text: value }));
    return dl;
  }

  const corsRequestHeader = (name) => name === "origin" || name.startsWith("access-control-request-") ||
    name.startsWith("sec-fetch-") || name === "content-type";

  function section(id, title, ...children) {
    return el("div", { id }, el("h3", { text: title }), ...children);
  }

  function list(items) {
    return el("ul", {}, ...items.map((item) => el("li", { text: item })));
  }

  function showDetail(event) {
    const pane = $("detail");
    if (!event) { pane.hidden = true; return; }
    pane.hidden = false;
    const parts = [el("h2", { text: `${event.method} ${event.intercepted || ""}${event.path}` }),
      el("p", {}, el("span", { class: `badge ${event.decision}`, text: event.decision }),
         ` status ${event.status}` + (event.upstream_status !== null ? ` (upstream ${event.upstream_status})` : "") +
         ` · ${event.duration_ms.toFixed(1)} ms · ${event.time}`),
      el("p", { class: "muted", text: event.route ? `route ${event.route} (${event.source})`
                                                  : `no route; file defaults (${event.source || "—"})` })];
    if (event.reasons.length) parts.push(section("detail-reasons", "Why", list(event.reasons)));
    if (event.fix.length) {
      parts.push(section("detail-fix", "Fix (corsproxy config)", ...event.fix.flatMap((fix) => [
        el("p", { text: `${fix.key} at ${fix.source}: ${fix.text}` }), el("pre", { text: fix.yaml })])));
    }
    const request = event.request;
    parts.push(section("detail-request", "Request (CORS headers)",
      headerList(request.headers, corsRequestHeader),
      el("p", { text: `cookies sent: ${request.cookies_sent ? "yes" : "no"} · Authorization sent: ` +
                      `${request.authorization_sent ? "yes" : "no"}` +
                      (request.injected.length ? ` · injected by the route (values hidden): ${request.injected.join(", ")}` : "") })));
    parts.push(section("detail-response", "Response (CORS headers the proxy sent)",
      headerList(event.response.headers, (name) => name.startsWith("access-control-") || name === "vary" ||
                                               name.startsWith("x-corsproxy-"))));
    parts.push(section("detail-cookies", "Cookies", event.cookies.length ? list(event.cookies)
      : el("p", { class: "muted", text: "no Set-Cookie here that the browser will drop" })));
    parts.push(upstreamSection(event));
    if (event.preflight_id) {
      const link = el("a", { href: "#", text: `the preflight (#${event.preflight_id})` });
      link.addEventListener("click", (e) => { e.preventDefault(); select(event.preflight_id); });
      parts.push(el("p", { class: "muted" }, "This request followed ", link, "."));
    }
    pane.replaceChildren(...parts);
  }

  function upstreamSection(event) {
    const up = event.upstream_cors;
    if (!up) {
      return section("detail-upstream", "What the upstream said",
        el("p", { class: "muted", text: "nothing was forwarded, so the upstream said nothing" }));
    }
    const verdict = up.browser_would_allow
      ? "Without corsproxy a browser would let the page read this response."
      : "Without corsproxy a browser would block this page from reading the response, because:";
    const children = [headerList(up.headers),
      el("div", { class: `verdict ${up.browser_would_allow ? "allow" : "block"}`, text: verdict })];
    if (up.why.length) children.push(list(up.why));
    if (up.fix.length) {
      children.push(el("p", { text: "Server-side fix: the API must send" }), el("pre", { text: up.fix.join("\n") }));
    }
    if (up.snippets) {
      children.push(el("p", { text: "Express:" }), el("pre", { text: up.snippets.express }),
                    el("p", { text: "nginx:" }), el("pre", { text: up.snippets.nginx }));
    }
    if (up.notes.length) children.push(el("p", { class: "muted", text: up.notes.join(" ") }));
    return section("detail-upstream", "What the upstream said (its own Access-Control-* headers)", ...children);
  }

  // --- controls ---------------------------------------------------------------------------------

  for (const id of ["only-refusals", "route-filter", "origin-filter", "path-filter"]) {
    $(id).addEventListener("input", render);
  }
  $("filters").addEventListener("submit", (e) => e.preventDefault());
  $("clear").addEventListener("click", async () => {
    await fetch(EVENTS, { method: "DELETE" });
    state.events.clear();
    state.selected = null;
    $("detail").hidden = true;
    render();
  });
  poll();
})();
