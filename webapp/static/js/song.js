// Song page: live generation progress (websocket, with polling as a fallback) and the waveform.
(function () {
  for (const canvas of document.querySelectorAll("canvas.waveform")) {
    const peaks = (canvas.dataset.peaks || "").split(",").filter(Boolean).map(Number);
    const ctx = canvas.getContext("2d");
    const mid = canvas.height / 2, step = canvas.width / Math.max(peaks.length, 1);
    ctx.fillStyle = "#5b3cc4";
    peaks.forEach((p, i) => ctx.fillRect(i * step, mid - p * mid, Math.max(step - 1, 1), Math.max(p * canvas.height, 1)));
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
