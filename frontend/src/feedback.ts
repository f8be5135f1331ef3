// Listening feedback, batched to POST /api/v1/feedback/ (docs/api.md): impressions, plays,
// progress, completions, skips, replays, thumbs, shares, downloads. A batch that fails for a
// network or server reason is sent again later; client_event_id makes the retry count once.

import { csrfToken, randomId } from "./dom";

export type FeedbackKind =
  | "impression"
  | "play_start"
  | "progress"
  | "complete"
  | "skip"
  | "replay"
  | "thumb_up"
  | "thumb_down"
  | "share"
  | "download";

export interface FeedbackEvent {
  kind: FeedbackKind;
  target_type: "song" | "chunk";
  target_id: string;
  client_event_id: string;
  client_ts: string;
  value?: number;
  position_s?: number;
  share_token?: string;
}

const MAX_BATCH = 100; // the endpoint's limit
const FLUSH_EVERY_MS = 5000;

export class FeedbackQueue {
  private queue: FeedbackEvent[] = [];
  private timer: number | undefined;

  constructor(
    private readonly endpoint = "/api/v1/feedback/",
    private readonly post: typeof fetch = (...args) => fetch(...args),
  ) {}

  /** Starts the periodic flush and the last flush when the page goes away. */
  start(): this {
    this.timer = window.setInterval(() => void this.flush(), FLUSH_EVERY_MS);
    addEventListener("pagehide", () => void this.flush(true));
    return this;
  }

  stop(): void {
    window.clearInterval(this.timer);
  }

  add(
    kind: FeedbackKind,
    target: { type: "song" | "chunk"; id: string; shareToken?: string },
    extra: { value?: number; position_s?: number } = {},
  ): FeedbackEvent {
    const event: FeedbackEvent = {
      kind,
      target_type: target.type,
      target_id: target.id,
      client_event_id: randomId(),
      client_ts: new Date().toISOString(),
      ...extra,
      ...(target.shareToken ? { share_token: target.shareToken } : {}),
    };
    this.queue.push(event);
    return event;
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Sends what is queued. Resolves true when the server took it (or nothing was queued). */
  async flush(keepalive = false): Promise<boolean> {
    if (this.queue.length === 0) return true;
    const events = this.queue.splice(0, MAX_BATCH);
    try {
      const response = await this.post(this.endpoint, {
        method: "POST",
        keepalive,
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify({ events }),
      });
      if (response.ok) return true;
      // A 400 is our bug: sending it again would fail again, so it is dropped (and logged).
      if (response.status === 400) {
        console.warn("feedback batch refused", await response.text());
        return false;
      }
    } catch {
      // offline: keep the events
    }
    this.queue = events.concat(this.queue);
    return false;
  }
}
