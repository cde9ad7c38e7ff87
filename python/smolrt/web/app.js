// The smolrt chat page. No build step, no dependencies.
//
// Safety by construction: text from the model or the user is only ever placed with textContent or
// text nodes (renderMarkdown builds DOM nodes; there is no innerHTML anywhere in this file), so a
// reply containing <script> or <img onerror> shows as text and never runs.
//
// Streaming: one Server-Sent Events stream per open session (GET /api/sessions/{id}/events), read
// with fetch rather than EventSource so that it can carry the API key. Every event has the log's
// sequence number; after a network drop the page reconnects with Last-Event-ID set to the last
// number it saw, and the server replays exactly what was missed.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const els = {
    app: $("app"), sidebar: $("sidebar"), scrim: $("scrim"), sessions: $("sessions"), newChat: $("new-chat"),
    menu: $("menu"), title: $("title"), model: $("model"), banner: $("banner"), keybox: $("keybox"),
    key: $("key"), messages: $("messages"), empty: $("empty"), composer: $("composer"), input: $("input"),
    send: $("send"), stop: $("stop"), thinking: $("thinking"),
  };
  const KEY_STORAGE = "smolrt.apiKey";
  const state = {
    key: localStorage.getItem(KEY_STORAGE) || "",
    sessions: [],
    current: null, // the open session's id
    stream: null, // the open session's event stream (see follow)
    view: null, // the turn being displayed: {user, reply, thoughts, content, reasoning}
    generating: false,
    ready: true,
  };

  // ---- markdown: a small subset, built as DOM nodes ---------------------------------------

  const SAFE_URL = /^(https?:|mailto:)/i;
  const INLINE = /(`+)([\s\S]*?[^`])\1(?!`)|\*\*([^*\n]+)\*\*|__([^_\n]+)__|\*([^*\s][^*\n]*?)\*|_([^_\s][^_\n]*?)_|\[([^\]\n]+)\]\(([^)\s]+)\)/;

  function inline(text, parent) {
    let rest = text;
    while (rest.length > 0) {
      const m = INLINE.exec(rest);
      if (!m) {
        parent.appendChild(document.createTextNode(rest));
        return;
      }
      if (m.index > 0) parent.appendChild(document.createTextNode(rest.slice(0, m.index)));
      if (m[1] !== undefined) {
        const code = document.createElement("code");
        code.textContent = m[2];
        parent.appendChild(code);
      } else if (m[3] !== undefined || m[4] !== undefined) {
        const strong = document.createElement("strong");
        inline(m[3] !== undefined ? m[3] : m[4], strong);
        parent.appendChild(strong);
      } else if (m[5] !== undefined || m[6] !== undefined) {
        const em = document.createElement("em");
        inline(m[5] !== undefined ? m[5] : m[6], em);
        parent.appendChild(em);
      } else {
        const label = m[7];
        const href = m[8];
        if (SAFE_URL.test(href)) {
          const a = document.createElement("a");
          a.href = href; // an http(s) or mailto URL: nothing that runs
          a.rel = "noopener noreferrer nofollow";
          a.target = "_blank";
          inline(label, a);
          parent.appendChild(a);
        } else {
          parent.appendChild(document.createTextNode(m[0])); // javascript: and friends stay text
        }
      }
      rest = rest.slice(m.index + m[0].length);
    }
  }

  function renderMarkdown(text) {
    const out = document.createDocumentFragment();
    const lines = String(text).split(/\r\n|\r|\n/);
    let para = null; // the open paragraph
    let list = null; // the open list
    const closeBlocks = () => { para = null; list = null; };
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      const fence = /^\s*(`{3,}|~{3,})\s*([\w+-]*)/.exec(line);
      if (fence) {
        closeBlocks();
        const body = [];
        for (i += 1; i < lines.length && !lines[i].trim().startsWith(fence[1]); i++) body.push(lines[i]);
        const pre = document.createElement("pre");
        const code = document.createElement("code");
        if (fence[2]) code.className = "language-" + fence[2].replace(/[^\w-]/g, "");
        code.textContent = body.join("\n");
        pre.appendChild(code);
        out.appendChild(pre);
        continue;
      }
      if (line.trim() === "") { closeBlocks(); continue; }
      const heading = /^(#{1,6})\s+(.*)$/.exec(line);
      if (heading) {
        closeBlocks();
        const h = document.createElement("h" + Math.min(6, heading[1].length + 2));
        inline(heading[2], h);
        out.appendChild(h);
        continue;
      }
      const bullet = /^\s*[-*+]\s+(.*)$/.exec(line);
      const numbered = bullet ? null : /^\s*\d+[.)]\s+(.*)$/.exec(line);
      if (bullet || numbered) {
        const tag = bullet ? "UL" : "OL";
        if (!list || list.tagName !== tag) {
          para = null;
          list = document.createElement(tag.toLowerCase());
          out.appendChild(list);
        }
        const li = document.createElement("li");
        inline((bullet || numbered)[1], li);
        list.appendChild(li);
        continue;
      }
      const quote = /^>\s?(.*)$/.exec(line);
      if (quote) {
        closeBlocks();
        const bq = document.createElement("blockquote");
        inline(quote[1], bq);
        out.appendChild(bq);
        continue;
      }
      list = null;
      if (!para) {
        para = document.createElement("p");
        out.appendChild(para);
      } else {
        para.appendChild(document.createElement("br"));
      }
      inline(line, para);
    }
    return out;
  }

  // ---- the API ------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message, code) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, { method = "GET", body, headers = {}, signal } = {}) {
    const h = { ...headers };
    if (state.key) h.Authorization = "Bearer " + state.key;
    if (body !== undefined) h["Content-Type"] = "application/json";
    const res = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body), signal });
    if (!res.ok) {
      let message = res.statusText;
      let code;
      try {
        const err = (await res.json()).error;
        message = err.message;
        code = err.code;
      } catch (_) { /* not JSON: keep the status text */ }
      if (res.status === 401) showKeyBox();
      throw new ApiError(res.status, message, code);
    }
    return res;
  }

  const json = async (path, opts) => (await api(path, opts)).json();
  const sessionPath = (id) => "/api/sessions/" + encodeURIComponent(id);

  // ---- banners ------------------------------------------------------------------------------

  const banners = { model: null, link: null, error: null };

  function setBanner(kind, text) {
    banners[kind] = text;
    const shown = banners.model || banners.link || banners.error;
    els.banner.hidden = !shown;
    els.banner.textContent = shown || "";
    els.banner.className = banners.model || banners.link ? "" : "error";
  }

  function showKeyBox() {
    els.keybox.hidden = false;
    els.key.focus();
  }

  async function checkReady() {
    try {
      const res = await fetch("/readyz");
      const body = await res.json();
      state.ready = res.ok;
      const why = body.message || "no model loaded";
      setBanner("model", res.ok ? null : why.charAt(0).toUpperCase() + why.slice(1));
      els.model.textContent = res.ok ? body.model || "" : "";
    } catch (_) {
      setBanner("model", "The server cannot be reached.");
    }
    updateComposer();
    if (!state.ready) setTimeout(checkReady, 10000);
  }

  // ---- the sidebar --------------------------------------------------------------------------

  async function loadSessions() {
    try {
      state.sessions = (await json("/api/sessions")).sessions;
    } catch (err) {
      if (err.status !== 503) setBanner("error", err.message);
      state.sessions = [];
    }
    renderSessions();
  }

  function renderSessions() {
    els.sessions.replaceChildren();
    for (const s of [...state.sessions].reverse()) {
      const li = document.createElement("li");
      li.dataset.id = s.id;
      if (s.id === state.current) li.className = "current";
      const open = document.createElement("button");
      open.type = "button";
      open.className = "open" + (s.state === "generating" ? " busy" : "");
      open.textContent = s.title || "New chat";
      open.title = s.title || "New chat";
      open.addEventListener("click", () => { closeDrawer(); openSession(s.id); });
      const del = document.createElement("button");
      del.type = "button";
      del.className = "delete";
      del.textContent = "\u00d7";
      del.setAttribute("aria-label", "Delete this chat");
      del.addEventListener("click", () => deleteSession(s.id));
      li.append(open, del);
      els.sessions.appendChild(li);
    }
    const current = state.sessions.find((s) => s.id === state.current);
    els.title.textContent = current && current.title ? current.title : "New chat";
  }

  async function deleteSession(id) {
    try {
      await api(sessionPath(id), { method: "DELETE" });
    } catch (err) {
      if (err.status !== 404) { setBanner("error", err.message); return; }
    }
    if (id === state.current) newChat();
    await loadSessions();
  }

  const closeDrawer = () => { els.app.classList.remove("drawer"); els.scrim.hidden = true; };

  // ---- the transcript -----------------------------------------------------------------------

  function scrollDown() {
    const m = els.messages;
    m.scrollTop = m.scrollHeight;
  }

  function addMessage(role, text) {
    els.empty.hidden = true;
    const box = document.createElement("div");
    box.className = "msg " + role;
    const who = document.createElement("div");
    who.className = "who";
    who.textContent = role === "user" ? "You" : "Assistant";
    const body = document.createElement("div");
    body.className = "body";
    box.append(who, body);
    els.messages.appendChild(box);
    if (role === "user") body.textContent = text; // never markup: what was typed is what shows
    return { box, body };
  }

  function addReply(content = "", reasoning = "") {
    const { box, body } = addMessage("assistant", "");
    const view = { box, body, thoughts: null, content, reasoning, dirty: false };
    if (reasoning) ensureThoughts(view, false);
    paint(view);
    return view;
  }

  function ensureThoughts(view, open) {
    if (view.thoughts) return view.thoughts;
    const details = document.createElement("details");
    details.className = "reasoning";
    details.open = open;
    const summary = document.createElement("summary");
    summary.textContent = open ? "Thinking\u2026" : "Reasoning";
    const text = document.createElement("div");
    text.className = "thoughts";
    details.append(summary, text);
    view.box.insertBefore(details, view.body);
    view.thoughts = { details, summary, text };
    return view.thoughts;
  }

  function paint(view) {
    view.dirty = false;
    if (view.thoughts) view.thoughts.text.textContent = view.reasoning;
    view.body.replaceChildren(renderMarkdown(view.content));
  }

  // Re-render at most once a frame, however fast tokens arrive.
  function schedulePaint(view) {
    if (view.dirty) return;
    view.dirty = true;
    requestAnimationFrame(() => { if (view.dirty) { paint(view); scrollDown(); } });
  }

  function clearTranscript() {
    for (const el of [...els.messages.children]) if (el !== els.empty) el.remove();
    els.empty.hidden = false;
    state.view = null;
  }

  function renderTranscript(messages) {
    for (const m of messages) {
      if (m.role === "user") addMessage("user", m.content || "");
      else if (m.role === "assistant") addReply(m.content || "", m.reasoning_content || "");
    }
    scrollDown();
  }

  // ---- session events -----------------------------------------------------------------------

  function onEvent(name, data) {
    if (name === "started") {
      addMessage("user", data.content);
      state.view = addReply();
      state.view.box.classList.add("streaming");
      setGenerating(true);
      scrollDown();
    } else if (name === "content" || name === "reasoning") {
      if (!state.view) {
        state.view = addReply();
        state.view.box.classList.add("streaming");
        setGenerating(true);
      }
      const view = state.view;
      if (name === "reasoning") {
        ensureThoughts(view, true);
        view.reasoning += data.text;
      } else {
        if (view.thoughts && view.thoughts.details.open && view.content === "") view.thoughts.details.open = false;
        view.content += data.text;
      }
      schedulePaint(view);
    } else if (name === "finished" || name === "error") {
      const view = state.view || addReply();
      paint(view);
      view.box.classList.remove("streaming");
      if (view.thoughts) {
        view.thoughts.details.open = false; // the answer is what matters now; a click shows the rest
        view.thoughts.summary.textContent = `Reasoning (${data.usage ? data.usage.reasoning_tokens : "?"} tokens)`;
      }
      const meta = document.createElement("div");
      if (name === "finished") {
        meta.className = "meta";
        const u = data.usage;
        const speed = data.timings.decode_tokens_per_s;
        const parts = [`${u.completion_tokens} tokens`];
        if (speed > 0) parts.push(`${speed.toFixed(1)} tok/s`);
        if (data.reason !== "stop") parts.push(data.reason === "cancelled" ? "stopped" : `ended: ${data.reason}`);
        meta.textContent = parts.join(" \u00b7 ");
      } else {
        meta.className = "failure";
        meta.textContent = "Error: " + data.message;
      }
      view.box.appendChild(meta);
      state.view = null;
      setGenerating(false);
      scrollDown();
      loadSessions();
    }
  }

  // Parse a text/event-stream body, calling onMessage(id, name, data) per event.
  async function readEvents(body, onMessage) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let id = null;
    let name = "message";
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + (buffer.startsWith("\r\n", nl) ? 2 : 1));
        if (line === "") {
          if (data.length) onMessage(id, name, JSON.parse(data.join("\n")));
          id = null; name = "message"; data = [];
        } else if (!line.startsWith(":")) {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "id") id = val;
          else if (field === "event") name = val;
          else if (field === "data") data.push(val);
        }
      }
    }
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  // Follow the open session's events from `after`, reconnecting (with Last-Event-ID) until another
  // session is opened. Returns at once; the loop runs in the background.
  function follow(sessionId, after) {
    stopFollowing();
    const stream = { sessionId, lastSeq: after, ctl: null, failures: 0 };
    state.stream = stream;
    (async () => {
      while (state.stream === stream) {
        stream.ctl = new AbortController();
        try {
          const res = await api(sessionPath(sessionId) + "/events", {
            headers: { "Last-Event-ID": String(stream.lastSeq), Accept: "text/event-stream" },
            signal: stream.ctl.signal,
          });
          setBanner("link", null);
          stream.failures = 0;
          await readEvents(res.body, (id, name, data) => {
            if (state.stream !== stream) return;
            if (id !== null) stream.lastSeq = Number(id);
            onEvent(name, data);
          });
        } catch (err) {
          if (state.stream !== stream) return;
          if (err.status === 404) { newChat(); loadSessions(); return; }
          if (err.status === 401) return;
          if (err.status === 416) { openSession(sessionId); return; } // too far behind: reload
        }
        if (state.stream !== stream) return;
        setBanner("link", "Connection lost: reconnecting\u2026");
        await sleep(Math.min(8000, 300 * 2 ** stream.failures++));
      }
    })();
  }

  function stopFollowing() {
    const stream = state.stream;
    state.stream = null;
    if (stream && stream.ctl) stream.ctl.abort();
    setBanner("link", null);
  }

  async function openSession(id) {
    stopFollowing();
    clearTranscript();
    setGenerating(false);
    state.current = id;
    if (location.hash !== "#" + id) history.replaceState(null, "", "#" + id);
    renderSessions();
    let s;
    try {
      s = await json(sessionPath(id));
    } catch (err) {
      if (err.status === 404) { newChat(); return; }
      setBanner("error", err.message);
      return;
    }
    if (state.current !== id) return;
    let messages = s.messages;
    let after = s.last_seq;
    if (s.running_turn_seq !== null && s.running_turn_seq !== undefined) {
      // A reply is being written: replay its turn from the start (the user message comes back
      // with it) instead of showing a transcript that lacks the partial reply.
      messages = messages.slice(0, -1);
      after = s.running_turn_seq - 1;
    }
    // Unset means the template's default, which is "on" for thinking models.
    els.thinking.checked = s.enable_thinking !== false;
    renderTranscript(messages);
    follow(id, after);
  }

  async function setThinking() {
    if (!state.current) return; // a new chat is created with the box's state
    try {
      await api(sessionPath(state.current), { method: "PATCH", body: { enable_thinking: els.thinking.checked } });
    } catch (err) {
      setBanner("error", err.message);
    }
  }

  function newChat() {
    stopFollowing();
    state.current = null;
    clearTranscript();
    setGenerating(false);
    history.replaceState(null, "", location.pathname);
    renderSessions();
    els.input.focus();
  }

  // ---- sending ------------------------------------------------------------------------------

  function setGenerating(on) {
    state.generating = on;
    els.stop.hidden = !on;
    els.send.hidden = on;
    updateComposer();
  }

  function updateComposer() {
    els.send.disabled = !state.ready || state.generating;
  }

  async function send() {
    const text = els.input.value;
    if (!text.trim() || state.generating || !state.ready) return;
    setBanner("error", null);
    try {
      if (!state.current) {
        const s = await json("/api/sessions", { method: "POST", body: { enable_thinking: els.thinking.checked } });
        state.sessions.push(s);
        state.current = s.id;
        history.replaceState(null, "", "#" + s.id);
        renderSessions();
        follow(s.id, s.last_seq);
      }
      els.input.value = "";
      autosize();
      await api(sessionPath(state.current) + "/messages", { method: "POST", body: { content: text } });
    } catch (err) {
      if (!els.input.value) els.input.value = text; // give the text back to retry
      setBanner("error", err.message);
    }
  }

  async function stop() {
    if (!state.current) return;
    try {
      await api(sessionPath(state.current) + "/cancel", { method: "POST" });
    } catch (err) {
      setBanner("error", err.message);
    }
  }

  function autosize() {
    els.input.style.height = "auto";
    els.input.style.height = Math.min(els.input.scrollHeight + 2, window.innerHeight * 0.4) + "px";
  }

  // ---- wiring -------------------------------------------------------------------------------

  els.composer.addEventListener("submit", (e) => { e.preventDefault(); send(); });
  els.input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  els.input.addEventListener("input", autosize);
  els.stop.addEventListener("click", stop);
  els.thinking.addEventListener("change", setThinking);
  els.newChat.addEventListener("click", () => { closeDrawer(); newChat(); });
  els.menu.addEventListener("click", () => { els.app.classList.add("drawer"); els.scrim.hidden = false; });
  els.scrim.addEventListener("click", closeDrawer);
  els.keybox.addEventListener("submit", (e) => {
    e.preventDefault();
    state.key = els.key.value.trim();
    localStorage.setItem(KEY_STORAGE, state.key);
    els.keybox.hidden = true;
    start();
  });
  window.addEventListener("hashchange", () => {
    const id = location.hash.slice(1);
    if (id && id !== state.current) openSession(id);
  });

  if (window.matchMedia("(max-width: 720px)").matches) els.input.placeholder = "Message";

  async function start() {
    await checkReady();
    await loadSessions();
    const id = location.hash.slice(1);
    if (id) openSession(id);
  }

  // For tests and the curious: the renderer, and a way to simulate a dropped connection.
  window.smolrt = {
    renderMarkdown,
    dropConnection: () => { if (state.stream && state.stream.ctl) state.stream.ctl.abort(); },
    state,
  };

  start();
})();
