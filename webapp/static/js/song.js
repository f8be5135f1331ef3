// Song page: live generation progress (websocket, with polling as a fallback) and the waveform.
(function () {
  for (const canvas of document.querySelectorAll("canvas.waveform")) {
    const peaks = (canvas.dataset.peaks || "").split(",").filter(Boolean).map(Number);
    const ctx = canvas.getContext("2d");
    const mid = canvas.height / 2, step = canvas.width / Math.max(peaks.length, 1);
    ctx.fillStyle = "#5b3cc4";
    peaks.forEach((p, i) => ctx.fillRect(i * step, mid - p * mid, Math.max(step - 1, 1), Math.max(p * canvas.height, 1)));
  }
  // Listening feedback: thumbs, plays, progress quartiles, completion; batched to the API.
  const feedback = document.querySelector(".feedback[data-song-id]");
  if (feedback) {
    const songId = feedback.dataset.songId, shareToken = feedback.dataset.shareToken;
    const csrf = feedback.querySelector("input[name=csrfmiddlewaretoken]").value;
    const status = feedback.querySelector(".feedback-status");
    let queue = [];
    const add = (kind, extra) => queue.push({
      kind, target_type: "song", target_id: songId, client_event_id: crypto.randomUUID(),
      client_ts: new Date().toISOString(), ...(shareToken ? { share_token: shareToken } : {}), ...extra,
    });
    const flush = (keepalive) => {
      if (!queue.length) return Promise.resolve();
      const events = queue; queue = [];
      return fetch("/api/v1/feedback/", {
        method: "POST", keepalive, credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
        body: JSON.stringify({ events }),
      }).then((r) => { if (!r.ok && r.status !== 400) queue = events.concat(queue); })  // retry later; ids dedupe
        .catch(() => { queue = events.concat(queue); });
    };
    setInterval(() => flush(false), 10000);
    addEventListener("pagehide", () => flush(true));
    for (const button of feedback.querySelectorAll("button.thumb")) {
      button.addEventListener("click", () => {
        add(button.dataset.kind);
        for (const b of feedback.querySelectorAll("button.thumb")) b.setAttribute("aria-pressed", String(b === button));
        flush(false).then(() => { status.textContent = button.dataset.kind === "thumb_up" ? "Liked." : "Disliked."; });
      });
    }
    const audio = document.querySelector("audio");
    if (audio) {
      let started = false, ended = false, quartile = 0;
      audio.addEventListener("play", () => {  // a resume after a pause is neither
        if (!started || ended) add(ended ? "replay" : "play_start", { position_s: audio.currentTime });
        started = true; ended = false;
      });
      audio.addEventListener("timeupdate", () => {
        const q = Math.floor((audio.currentTime / audio.duration) * 4);
        if (audio.duration && q > quartile && q < 4) { quartile = q; add("progress", { value: q / 4, position_s: audio.currentTime }); }
      });
      audio.addEventListener("ended", () => {
        add("complete", { position_s: audio.duration }); ended = true; quartile = 0; flush(false);
      });
    }
  }

  const box = document.querySelector(".progress[data-song-id]");
  if (!box) return;
  const id = box.dataset.songId, bar = box.querySelector("progress"), label = box.querySelector(".status");
  const show = (msg) => {
    if (msg.status === "ready" || msg.status === "failed") { window.location.reload(); return; }
    bar.value = msg.progress; label.textContent = `${msg.status} ${Math.round(msg.progress * 100)}%`;
  };
  const poll = () => fetch(`/api/v1/songs/${id}/` + window.location.search)
    .then((r) => r.json()).then((s) => { show(s); setTimeout(poll, 1500); }).catch(() => setTimeout(poll, 3000));
  try {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/songs/${id}/`);
    ws.onmessage = (e) => show(JSON.parse(e.data));
    ws.onclose = (e) => { if (e.code !== 1000) poll(); };
  } catch (err) { poll(); }
})();
