// The song page and the share page: live progress while the song generates, then a waveform
// drawn from the stored peaks that is also the seek bar, play/pause, thumbs, share and
// downloads, each reported to the feedback endpoint in batches.

import { byId, formatTime, readJson } from "./dom";
import { type FeedbackKind, FeedbackQueue } from "./feedback";

interface SongConfig {
  song_id: string;
  share_token: string | null;
  audio_url: string;
  duration_s: number;
  peaks: number[];
  share_url: string | null;
}

const SEEK_STEP_S = 5;
const SEEK_PAGE_S = 15;

export function startSongPage(): void {
  const progress = document.querySelector<HTMLElement>(".progress[data-song-id]");
  if (progress) watchProgress(progress);
  const config = readJson<SongConfig>("song-config");
  if (config) new SongPlayer(config).start();
}

/** A generating song: the websocket's progress events, polling if the socket fails. */
function watchProgress(box: HTMLElement): void {
  const id = box.dataset.songId!;
  const bar = box.querySelector("progress")!;
  const label = box.querySelector(".status")!;
  let done = false;
  const show = (msg: { status: string; progress: number }) => {
    if (done) return;
    if (msg.status === "ready" || msg.status === "failed") {
      done = true;
      label.textContent = msg.status === "ready" ? "Ready. Loading the player…" : "Failed.";
      window.location.reload();
      return;
    }
    bar.value = msg.progress;
    bar.setAttribute("aria-valuetext", `${Math.round(msg.progress * 100)}%`);
    label.textContent = `${msg.status === "queued" ? "Queued" : "Generating"} · ${Math.round(msg.progress * 100)}%`;
  };
  const poll = () =>
    fetch(`/api/v1/songs/${id}/${window.location.search}`, { credentials: "same-origin" })
      .then((r) => r.json())
      .then((s) => {
        show(s);
        if (!done) window.setTimeout(poll, 1500);
      })
      .catch(() => window.setTimeout(poll, 3000));
  try {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/songs/${id}/`);
    ws.onmessage = (e) => show(JSON.parse(e.data));
    ws.onclose = (e) => {
      if (e.code !== 1000 && !done) void poll();
    };
  } catch {
    void poll();
  }
}

class SongPlayer {
  private readonly audio: HTMLAudioElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly feedback = new FeedbackQueue();
  private readonly target: { type: "song"; id: string; shareToken?: string };
  private started = false;
  private ended = false;
  private quartile = 0;

  constructor(private readonly config: SongConfig) {
    this.audio = byId<HTMLAudioElement>("song-audio")!;
    this.canvas = byId<HTMLCanvasElement>("waveform")!;
    this.target = {
      type: "song",
      id: config.song_id,
      ...(config.share_token ? { shareToken: config.share_token } : {}),
    };
  }

  private get duration(): number {
    return Number.isFinite(this.audio.duration) && this.audio.duration > 0
      ? this.audio.duration
      : this.config.duration_s;
  }

  private event(kind: FeedbackKind, extra: { value?: number; position_s?: number } = {}) {
    this.feedback.add(kind, this.target, extra);
  }

  start(): void {
    this.feedback.start();
    this.event("impression");
    const play = byId<HTMLButtonElement>("play-button")!;
    play.addEventListener("click", () => {
      if (this.audio.paused) void this.audio.play();
      else this.audio.pause();
    });
    this.audio.addEventListener("play", () => {
      play.textContent = "Pause";
      play.setAttribute("aria-label", "Pause");
      if (!this.started || this.ended) {
        this.event(this.ended ? "replay" : "play_start", { position_s: this.audio.currentTime });
      }
      this.started = true;
      this.ended = false;
    });
    this.audio.addEventListener("pause", () => {
      play.textContent = "Play";
      play.setAttribute("aria-label", "Play");
    });
    this.audio.addEventListener("timeupdate", () => this.onTime());
    this.audio.addEventListener("loadedmetadata", () => this.draw());
    this.audio.addEventListener("ended", () => {
      this.event("complete", { position_s: this.duration });
      this.ended = true;
      this.quartile = 0;
      void this.feedback.flush();
    });
    addEventListener("pagehide", () => {
      // Left part-way through: a skip (the queue's own pagehide flush sends it).
      if (this.started && !this.ended && this.audio.currentTime < this.duration * 0.9) {
        this.event("skip", { position_s: this.audio.currentTime, value: this.audio.currentTime / this.duration });
      }
    });
    this.wireSeek();
    this.wireThumbs();
    this.wireShare();
    for (const link of document.querySelectorAll<HTMLAnchorElement>("a[data-download]")) {
      link.addEventListener("click", () => {
        this.event("download");
        void this.feedback.flush();
      });
    }
    addEventListener("resize", () => this.draw());
    this.draw();
  }

  private onTime(): void {
    const t = this.audio.currentTime;
    const q = Math.floor((t / this.duration) * 4);
    if (q > this.quartile && q < 4) {
      this.quartile = q;
      this.event("progress", { value: q / 4, position_s: t });
    }
    byId("song-time")!.textContent = `${formatTime(t)} / ${formatTime(this.duration)}`;
    this.canvas.setAttribute("aria-valuenow", String(Math.round(t)));
    this.canvas.setAttribute("aria-valuetext", `${formatTime(t)} of ${formatTime(this.duration)}`);
    this.draw();
  }

  private seek(seconds: number): void {
    const t = Math.max(0, Math.min(this.duration, seconds));
    const jump = t - this.audio.currentTime;
    if (this.started && jump > this.duration * 0.25) {
      this.event("skip", { position_s: this.audio.currentTime, value: t / this.duration });
    }
    this.audio.currentTime = t;
    this.onTime();
  }

  private wireSeek(): void {
    this.canvas.setAttribute("aria-valuemax", String(Math.round(this.config.duration_s)));
    this.canvas.addEventListener("click", (e) => {
      const rect = this.canvas.getBoundingClientRect();
      this.seek(((e.clientX - rect.left) / rect.width) * this.duration);
    });
    this.canvas.addEventListener("keydown", (e) => {
      const t = this.audio.currentTime;
      const moves: Record<string, number> = {
        ArrowLeft: t - SEEK_STEP_S,
        ArrowDown: t - SEEK_STEP_S,
        ArrowRight: t + SEEK_STEP_S,
        ArrowUp: t + SEEK_STEP_S,
        PageDown: t - SEEK_PAGE_S,
        PageUp: t + SEEK_PAGE_S,
        Home: 0,
        End: this.duration,
      };
      if (e.key in moves) {
        e.preventDefault();
        this.seek(moves[e.key]);
      } else if (e.key === " " || e.key === "k") {
        e.preventDefault();
        byId("play-button")!.click();
      }
    });
  }

  /** The peaks, the part already heard in the accent colour, and the playhead. */
  private draw(): void {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const ctx = canvas.getContext("2d");
    if (!ctx) return;
    const styles = getComputedStyle(canvas);
    const played = styles.getPropertyValue("--played").trim() || "#5b3cc4";
    const rest = styles.getPropertyValue("--unplayed").trim() || "#c9c2e6";
    const peaks = this.config.peaks;
    const at = this.audio.currentTime / this.duration;
    ctx.clearRect(0, 0, width, height);
    const mid = height / 2;
    const bars = Math.min(peaks.length, Math.floor(width / (2 * ratio)));
    const step = width / Math.max(bars, 1);
    for (let i = 0; i < bars; i++) {
      const p = peaks[Math.floor((i / bars) * peaks.length)] ?? 0;
      const barH = Math.max(1 * ratio, p * (height - 2));
      ctx.fillStyle = i / bars < at ? played : rest;
      ctx.fillRect(i * step, mid - barH / 2, Math.max(step - ratio, 1), barH);
    }
    ctx.fillStyle = played;
    ctx.fillRect(Math.min(width - 2 * ratio, at * width), 0, 2 * ratio, height);
  }

  private wireThumbs(): void {
    const buttons = document.querySelectorAll<HTMLButtonElement>("button.thumb[data-kind]");
    const status = byId("thumb-status");
    for (const button of buttons) {
      button.addEventListener("click", async () => {
        this.event(button.dataset.kind as FeedbackKind);
        for (const b of buttons) b.setAttribute("aria-pressed", String(b === button));
        const ok = await this.feedback.flush();
        if (status) {
          status.textContent = ok
            ? button.dataset.kind === "thumb_up"
              ? "Liked."
              : "Disliked."
            : "Could not save that; we will try again.";
        }
      });
    }
  }

  private wireShare(): void {
    const button = byId<HTMLButtonElement>("copy-link");
    const input = byId<HTMLInputElement>("share-link");
    const status = byId("share-status");
    if (!button || !input) return;
    button.addEventListener("click", async () => {
      let copied = false;
      try {
        await navigator.clipboard.writeText(input.value);
        copied = true;
      } catch {
        input.select(); // no clipboard permission: leave it selected for Ctrl+C
      }
      this.event("share");
      void this.feedback.flush();
      if (status) status.textContent = copied ? "Link copied." : "Press Ctrl+C to copy the link.";
    });
  }
}
