// The room websocket client (docs/protocol.md, version 1): connects, answers to requests by id,
// keeps broadcasts in `seq` order (asking for a snapshot after a gap), pings for the clock, and
// reconnects with backoff after a drop. It knows frames, not pages: the room page listens.

import { ClockOffsetEstimator, ProbeSchedule } from "./clock";
import type { ChunkAnnouncement } from "./scheduler";

export interface Proposal {
  id: number;
  kind: "prompt" | "control" | string;
  text: string;
  control: Record<string, unknown>;
  status: "approved" | "pending" | "rejected" | string;
  author: string | null;
  votes?: number;
  audition?: { url: string; duration_s: number } | null;
}

export interface BlendPart {
  key: string;
  kind: string;
  label: string;
  weight: number;
}

export interface RoundInfo {
  number: number;
  opened_at: number;
  ends_at: number;
}

export interface RoomInfo {
  id: string;
  title: string;
  slug: string;
  host: string;
  visibility: string;
  mode: string;
  status: string;
  anchor_prompt: string;
  round_length_s: number;
  slow_mode_s: number;
  who_may_propose: string;
  login_required: boolean;
  timeline_origin: number;
}

export interface Snapshot {
  type: "snapshot";
  protocol: string;
  seq: number;
  server_now: number;
  room: RoomInfo;
  state: string;
  round: RoundInfo | null;
  ballot: Proposal[];
  blend: BlendPart[];
  chunks: ChunkAnnouncement[];
  presence: number;
  you: { role: "host" | "participant" | "listener"; voted_for: number | null };
  pending?: Proposal[];
  /** Host only: who is muted now (so that a reload remembers), soonest to end first. */
  muted?: MutedEntry[];
}

/** One muted participant in the host's snapshot: an account by `username`, a signed-out visitor
 * (`username` null) by their ideas on the ballot or waiting (`proposal_ids`). */
export interface MutedEntry {
  username: string | null;
  until: number;
  proposal_ids: number[];
}

export type Frame = { type: string; seq?: number; id?: string | number; [key: string]: unknown };

export interface ErrorFrame {
  type: "error";
  code: string;
  message: string;
  field?: string;
  id?: string | number;
  retry_after_s?: number;
}

export class RequestError extends Error {
  constructor(readonly frame: ErrorFrame) {
    super(frame.message);
  }
}

export type ConnectionStatus =
  | "connecting"
  | "open"
  | "reconnecting"
  | "closed"
  | "not_found"
  | "refused";

export interface RoomSocketEvents {
  snapshot(snapshot: Snapshot): void;
  broadcast(frame: Frame): void;
  status(status: ConnectionStatus, detail?: string): void;
  /** An error frame nobody asked for (rate limited on the connection, for example). */
  error(frame: ErrorFrame): void;
  /** A frame to this participant alone, outside the room's seq (a `notice`: the host muted you). */
  notice(frame: Frame): void;
  /** A new clock sample arrived. */
  clock(estimator: ClockOffsetEstimator): void;
}

const CLOSE_NOT_FOUND = 4404;
const CLOSE_FLOODING = 4429;
/** Closes after which reconnecting would only be refused again (docs/protocol.md, close codes). */
export const FINAL_CLOSES: Readonly<Record<number, string>> = {
  4403: "Your account may not take part any more: it was suspended or banned.",
  4410: "The host removed you from this room for a while.",
  4451: "A moderator closed or hid this room.",
};
const REQUEST_TIMEOUT_MS = 15000;

export function roomSocketUrl(loc: Location, roomId: string, shareToken?: string | null): string {
  const scheme = loc.protocol === "https:" ? "wss" : "ws";
  const query = shareToken ? `?share=${encodeURIComponent(shareToken)}` : "";
  return `${scheme}://${loc.host}/ws/rooms/${roomId}/${query}`;
}

/** Backoff after the n-th failed attempt in a row: 0.5 s doubling to 10 s, with jitter. */
export function reconnectDelayMs(attempt: number, random = Math.random): number {
  const base = Math.min(10000, 500 * 2 ** Math.max(0, attempt - 1));
  return base * (0.75 + 0.5 * random());
}

export class RoomSocket {
  readonly clock = new ClockOffsetEstimator();
  private readonly probes = new ProbeSchedule();
  private ws: WebSocket | null = null;
  private lastSeq: number | null = null;
  private nextId = 1;
  private attempts = 0;
  private closedByUs = false;
  private pingTimer: ReturnType<typeof setTimeout> | undefined;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly waiting = new Map<
    string,
    { resolve: (f: Frame) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> }
  >();

  constructor(
    private readonly url: string,
    private readonly on: Partial<RoomSocketEvents>,
    /** The local clock in seconds (ping's t0); the bench skews it to prove sync still holds. */
    private readonly localNow: () => number = () => Date.now() / 1000,
  ) {}

  connect(): void {
    this.closedByUs = false;
    this.open();
  }

  close(): void {
    this.closedByUs = true;
    clearTimeout(this.pingTimer);
    clearTimeout(this.reconnectTimer);
    this.ws?.close(1000);
    this.ws = null;
    this.on.status?.("closed");
  }

  get isOpen(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Sends a frame and resolves with its answer (ack, snapshot, keep_done); an error rejects. */
  request(frame: Frame): Promise<Frame> {
    const id = `c${this.nextId++}`;
    return new Promise((resolve, reject) => {
      if (!this.isOpen) {
        reject(new Error("Not connected; trying to reconnect."));
        return;
      }
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error("No answer from the server."));
      }, REQUEST_TIMEOUT_MS);
      this.waiting.set(id, { resolve, reject, timer });
      this.send({ ...frame, id });
    });
  }

  /** Sends a frame whose answer does not matter. */
  send(frame: Frame): void {
    if (this.isOpen) this.ws!.send(JSON.stringify(frame));
  }

  private open(): void {
    this.on.status?.(this.attempts === 0 ? "connecting" : "reconnecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      this.attempts = 0;
      this.lastSeq = null; // the snapshot sent on connect sets it
      this.clock.reset();
      this.probes.restart();
      this.schedulePing();
      this.on.status?.("open");
    };
    ws.onmessage = (event) => this.receive(String(event.data));
    ws.onclose = (event) => this.closed(ws, event.code);
  }

  private closed(ws: WebSocket, code: number): void {
    if (ws !== this.ws) return;
    clearTimeout(this.pingTimer);
    for (const [id, w] of this.waiting) {
      clearTimeout(w.timer);
      w.reject(new Error("The connection dropped."));
      this.waiting.delete(id);
    }
    this.ws = null;
    if (this.closedByUs) return;
    if (code === CLOSE_NOT_FOUND) {
      this.on.status?.("not_found", "This room does not exist or you may no longer see it.");
      return;
    }
    if (code in FINAL_CLOSES) {
      this.on.status?.("refused", FINAL_CLOSES[code]);
      return;
    }
    this.attempts += 1;
    const delay = reconnectDelayMs(this.attempts) * (code === CLOSE_FLOODING ? 4 : 1);
    this.on.status?.("reconnecting");
    this.reconnectTimer = setTimeout(() => this.open(), delay);
  }

  private schedulePing(): void {
    const delay = this.probes.nextDelayS() * 1000;
    this.pingTimer = setTimeout(() => {
      this.send({ type: "ping", t0: this.localNow() });
      this.schedulePing();
    }, delay);
  }

  private receive(text: string): void {
    let frame: Frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (frame.type === "pong") {
      const t3 = this.localNow();
      const { t0, t1, t2 } = frame as unknown as { t0: number; t1: number; t2: number };
      if (this.clock.add({ t0, t1, t2, t3 })) this.on.clock?.(this.clock);
      return;
    }
    if (frame.id !== undefined && frame.seq === undefined) {
      const w = this.waiting.get(String(frame.id));
      if (w) {
        this.waiting.delete(String(frame.id));
        clearTimeout(w.timer);
        if (frame.type === "error") w.reject(new RequestError(frame as unknown as ErrorFrame));
        else w.resolve(frame);
      }
      if (frame.type === "snapshot") this.applySnapshot(frame as unknown as Snapshot);
      return;
    }
    if (frame.type === "snapshot") {
      this.applySnapshot(frame as unknown as Snapshot);
      return;
    }
    if (frame.type === "error") {
      this.on.error?.(frame as unknown as ErrorFrame);
      return;
    }
    if (frame.type === "notice") {
      this.on.notice?.(frame);
      return;
    }
    if (typeof frame.seq !== "number") return; // an answer we did not ask for
    if (this.lastSeq === null || frame.seq <= this.lastSeq) return; // old news, or resyncing
    if (frame.seq > this.lastSeq + 1) {
      this.lastSeq = null; // ignore broadcasts until the snapshot comes
      this.send({ type: "snapshot" });
      return;
    }
    this.lastSeq = frame.seq;
    this.on.broadcast?.(frame);
  }

  private applySnapshot(snapshot: Snapshot): void {
    this.lastSeq = snapshot.seq;
    this.on.snapshot?.(snapshot);
  }
}
