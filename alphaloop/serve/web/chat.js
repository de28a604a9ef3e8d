// Chat: talk to a served LM policy through POST /v1/chat/completions with stream: true, showing each
// token as its server-sent event arrives (fetch + ReadableStream: EventSource cannot POST).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const history = [];          // the conversation as OpenAI messages (the chat template uses the last user turn)
  let models = null;
  let controller = null;       // aborts the stream in flight (Stop)

  async function loadModels() {
    const data = await App.json("/v1/models");
    models = data.data;
    const select = $("chat-model");
    select.replaceChildren(...models.map((m) => App.el("option", {value: m.id, text: m.id})));
    if (!models.length) {
      select.append(App.el("option", {value: "", text: "(no language model served)"}));
      $("chat-send").disabled = true;
    }
    describe();
  }

  function describe() {
    const model = (models || []).find((m) => m.id === $("chat-model").value);
    $("chat-template").textContent = model ?
      `env ${model.env || "unknown"}, context ${model.max_model_len} tokens; chat template ${model.chat_template}` : "";
  }

  function bubble(role, text) {
    const element = App.el("div", {class: `msg ${role}`},
      App.el("span", {class: "who", text: role === "user" ? "you" : $("chat-model").value}),
      App.el("span", {class: "text", text}));
    $("chat-log").append(element);
    $("chat-log").scrollTop = $("chat-log").scrollHeight;
    return element.querySelector(".text");
  }

  function number(id, fallback) {
    const value = parseFloat($(id).value);
    return Number.isFinite(value) ? value : fallback;
  }

  // Read the SSE stream: events are separated by a blank line, each `data: {chunk}` or `data: [DONE]`.
  async function readStream(response, onText) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, {stream: true});
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const payload = line.slice(6);
          if (payload === "[DONE]") return;
          const chunk = JSON.parse(payload);
          if (chunk.error) throw new Error(chunk.error.message);
          for (const choice of chunk.choices || []) {
            if (choice.delta && choice.delta.content) onText(choice.delta.content);
            if (choice.finish_reason) onText("", choice.finish_reason);
          }
        }
      }
    }
  }

  async function send(event) {
    event.preventDefault();
    const text = $("chat-input").value;
    if (!text.trim() || controller) return;
    App.error("chat-error", "");
    history.push({role: "user", content: text});
    bubble("user", text);
    $("chat-input").value = "";
    const out = bubble("assistant", "");
    out.parentElement.classList.add("streaming");
    controller = new AbortController();
    $("chat-send").disabled = true;
    $("chat-stop").hidden = false;
    let reply = "";
    try {
      const response = await fetch("/v1/chat/completions", {
        method: "POST", headers: {"Content-Type": "application/json"}, signal: controller.signal,
        body: JSON.stringify({
          model: $("chat-model").value, messages: history, stream: true,
          temperature: number("chat-temperature", 0.7), top_p: number("chat-top-p", 1),
          max_tokens: Math.round(number("chat-max-tokens", 64)),
        }),
      });
      if (!response.ok) {
        const data = await response.json().catch(() => null);
        throw new Error(data && data.error ? data.error.message : `HTTP ${response.status}`);
      }
      await readStream(response, (piece, finish) => {
        reply += piece;
        out.textContent = reply;
        if (finish) out.parentElement.dataset.finish = finish;
        $("chat-log").scrollTop = $("chat-log").scrollHeight;
      });
      history.push({role: "assistant", content: reply});
    } catch (error) {
      if (error.name !== "AbortError") {
        App.error("chat-error", error.message);
        if (!reply) out.parentElement.remove();
        history.pop();
      } else {
        history.push({role: "assistant", content: reply});
      }
    } finally {
      out.parentElement.classList.remove("streaming");
      out.parentElement.classList.add("done");
      controller = null;
      $("chat-send").disabled = false;
      $("chat-stop").hidden = true;
      $("chat-input").focus();
    }
  }

  $("chat-form").addEventListener("submit", send);
  $("chat-stop").addEventListener("click", () => controller && controller.abort());
  $("chat-model").addEventListener("change", describe);
  $("chat-clear").addEventListener("click", () => {
    history.length = 0;
    $("chat-log").replaceChildren();
  });

  App.page("chat", {
    show() {
      if (models === null) loadModels().catch((error) => App.error("chat-error", error.message));
      $("chat-input").focus();
    },
  });
})();
