// The web app's shell: one page per #fragment (#/chat, #/play, #/runs, #/runs/NAME), and the helpers the
// pages share. Each page registers itself with `App.page(name, {show, hide})`; `show` receives the rest
// of the fragment (a run's name). Plain browser JavaScript: no libraries, no build step.
"use strict";

const App = {
  pages: {},
  current: null,

  page(name, handlers) {
    this.pages[name] = handlers;
  },

  // GET or POST JSON; errors in the API's shape ({"error": {"message"}}) become an Error with that message.
  async json(url, body) {
    const init = body === undefined ? {} : {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
    const response = await fetch(url, init);
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      throw new Error(`${url}: HTTP ${response.status}, not JSON`);
    }
    if (!response.ok) {
      throw new Error(data && data.error ? data.error.message : `${url}: HTTP ${response.status}`);
    }
    return data;
  },

  // Show `message` in the page's error line, or hide the line when message is empty.
  error(id, message) {
    const element = document.getElementById(id);
    element.textContent = message || "";
    element.hidden = !message;
  },

  el(tag, attrs, ...children) {
    const element = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") element.className = value;
      else if (key === "text") element.textContent = value;
      else element.setAttribute(key, value);
    }
    for (const child of children) element.append(child);
    return element;
  },

  fmt(value) {
    if (typeof value !== "number") return String(value);
    if (Number.isInteger(value)) return String(value);
    return Math.abs(value) >= 100 ? value.toFixed(1) : value.toPrecision(3);
  },

  route() {
    const hash = location.hash.replace(/^#\/?/, "") || "chat";
    const [name, ...rest] = hash.split("/");
    const target = this.pages[name] ? name : "chat";
    if (this.current && this.current !== target && this.pages[this.current].hide) this.pages[this.current].hide();
    for (const section of document.querySelectorAll(".page")) section.hidden = section.id !== `page-${target}`;
    for (const link of document.querySelectorAll("nav a[data-page]")) {
      link.classList.toggle("active", link.dataset.page === target);
    }
    this.current = target;
    this.pages[target].show(rest.map(decodeURIComponent).join("/"));
  },
};

window.addEventListener("hashchange", () => App.route());
window.addEventListener("DOMContentLoaded", () => App.route());
