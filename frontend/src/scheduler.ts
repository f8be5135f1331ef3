// The chunk scheduler: turns `chunk` frames into sources started on the AudioContext clock at
// their server start time (docs/protocol.md, "Playing in time").
//
// Rules it keeps:
// - A chunk plays at server time timeline_origin + start_s for duration_s (never assumed: chunks
//   may be 1 s or 2 s). Joining late, the chunk playing now starts part-way in.
// - Chunks that follow each other on the server's timeline follow each other on the audio clock
//   without a gap or an overlap: the next one starts exactly where the previous one ends, and a
//   moving clock estimate is followed by a slew of at most `slewS` (2 ms) per chunk, never by a
//   click. A better ping sample can move the estimate by tens of milliseconds (the first pings
//   meet a busy server); that is slewed away over a few chunks. Only when the estimate moved by
//   more than `resyncS` (100 ms: a real clock step, not a refinement) does it jump.
// - A chunk frame with a higher `revision` for a sequence already scheduled replaces it: the old
//   source is cancelled (or, if it already started, stopped where the new one starts), and every
//   scheduled chunk with a larger sequence is dropped (the server announces them again).
// - A replacement with `splice_s` is the same music as the old revision up to that point: the old
//   source keeps playing until then and the new one takes over there, sample for sample, so a
//   vote can be heard in the middle of a chunk without a click. The old source is stopped only
//   once the new audio is in (if it never arrives, the old one plays on).
// Audio is behind small interfaces (AudioOut, Voice) so the unit tests use fakes.

export interface ChunkAnnouncement {
  sequence: number;
  start_s: number;
  duration_s: number;
  url: string;
  revision?: number;
  /** A replacement that is the same music as the previous revision up to here (seconds). */
  splice_s?: number;
}

/** A scheduled source; stop(when) with a context time, or at once without one. */
export interface Voice {
  stop(whenCtx?: number): void;
}

export interface AudioOut<B> {
  /** The AudioContext's currentTime. */
  now(): number;
  /** Start `buffer` at context time `whenCtx`, `offsetS` into it, for `durationS`. */
  play(buffer: B, whenCtx: number, offsetS: number, durationS: number): Voice;
}

export interface SchedulerClock {
  /** Context time at which a sample must start to be heard at server time `serverS`. */
  serverToCtx(serverS: number): number;
}

export type ChunkState = "loading" | "scheduled" | "skipped" | "cancelled" | "failed";

export interface ScheduledChunk {
  sequence: number;
  revision: number;
  url: string;
  /** On the server's clock. */
  serverStart: number;
  serverEnd: number;
  state: ChunkState;
  /** Context time the first played sample starts (set once scheduled). */
  ctxStart: number;
  /** How far into the chunk playback starts (late joiners), seconds. */
  offsetS: number;
  /** How long it plays, seconds (duration_s - offsetS). */
  playS: number;
  /** Why it was placed where it was: on its target, after the previous chunk, late, or at
   * a splice (taking over from the previous revision). */
  placement: "target" | "contiguous" | "late" | "resync" | "splice" | "";
  voice: Voice | null;
  /** A splice's switch point into the chunk, seconds (0: none). */
  spliceS: number;
  /** The previous revision, still sounding until this one's audio is in (splices only). */
  previous: ScheduledChunk | null;
}

export interface SchedulerOptions<B> {
  out: AudioOut<B>;
  clock: SchedulerClock;
  load: (url: string) => Promise<B>;
  /** room.timeline_origin (server seconds). */
  timelineOrigin: number;
  /** Never schedule closer to now than this (the audio thread needs a moment). */
  leadS?: number;
  /** Largest correction applied to a contiguous chunk toward the clock estimate. */
  slewS?: number;
  /** A contiguous chunk further than this from its target jumps to the target. */
  resyncS?: number;
  /** Two chunks are contiguous when one ends within this of where the other starts. */
  contiguityS?: number;
  onPlaced?: (chunk: ScheduledChunk) => void;
  onError?: (chunk: ScheduledChunk, error: unknown) => void;
}

const KEEP_PAST_S = 30; // chunks that ended longer ago than this are forgotten

export class ChunkScheduler<B> {
  private readonly chunks = new Map<number, ScheduledChunk>();
  private readonly opts: Required<Omit<SchedulerOptions<B>, "onPlaced" | "onError">> &
    Pick<SchedulerOptions<B>, "onPlaced" | "onError">;
  private stopped = false;

  constructor(options: SchedulerOptions<B>) {
    this.opts = {
      leadS: 0.03,
      slewS: 0.002,
      resyncS: 0.1,
      contiguityS: 0.002,
      ...options,
    };
  }

  set timelineOrigin(value: number) {
    this.opts.timelineOrigin = value;
  }

  /** Everything known, by sequence. */
  list(): ScheduledChunk[] {
    return [...this.chunks.values()].sort((a, b) => a.sequence - b.sequence);
  }

  get(sequence: number): ScheduledChunk | undefined {
    return this.chunks.get(sequence);
  }

  /**
   * A `chunk` frame (or a snapshot's chunk). Returns what happened: "new", "replaced",
   * "duplicate" (already known at this revision or a newer one) or "ignored" (after stop()).
   */
  announce(chunk: ChunkAnnouncement): "new" | "replaced" | "duplicate" | "ignored" {
    if (this.stopped) return "ignored";
    const revision = chunk.revision ?? 0;
    const existing = this.chunks.get(chunk.sequence);
    if (existing && existing.revision >= revision) return "duplicate";
    const serverStart = this.opts.timelineOrigin + chunk.start_s;
    let outcome: "new" | "replaced" = "new";
    const spliceS = existing ? Math.max(0, chunk.splice_s ?? 0) : 0;
    let previous: ScheduledChunk | null = null;
    if (existing) {
      outcome = "replaced";
      // what sounds now: the existing revision, or (while that one still loads) the one before
      const sounding = existing.state === "scheduled" ? existing : existing.previous;
      if (spliceS > 0 && sounding?.state === "scheduled" && sounding.voice) {
        previous = sounding; // it plays on until the new audio is in (place)
        if (sounding !== existing) this.cancel(existing);
      } else {
        this.cancel(existing, this.opts.clock.serverToCtx(serverStart));
        if (existing.previous) this.cancel(existing.previous);
      }
      for (const later of this.chunks.values()) {
        if (later.sequence > chunk.sequence) {
          this.cancel(later);
          this.chunks.delete(later.sequence);
        }
      }
    }
    const entry: ScheduledChunk = {
      sequence: chunk.sequence,
      revision,
      url: chunk.url,
      serverStart,
      serverEnd: serverStart + chunk.duration_s,
      state: "loading",
      ctxStart: 0,
      offsetS: 0,
      playS: 0,
      placement: "",
      voice: null,
      spliceS,
      previous,
    };
    this.chunks.set(chunk.sequence, entry);
    this.forgetOld();
    this.opts.load(chunk.url).then(
      (buffer) => this.place(entry, buffer),
      (error) => {
        if (this.chunks.get(entry.sequence) !== entry) return;
        entry.state = "failed";
        this.opts.onError?.(entry, error);
      },
    );
    return outcome;
  }

  /** Schedules a loaded chunk. Public for tests; announce() calls it when the audio is in. */
  place(entry: ScheduledChunk, buffer: B): void {
    if (this.stopped || this.chunks.get(entry.sequence) !== entry || entry.state !== "loading") {
      return; // replaced or dropped while it loaded
    }
    const { out, clock, leadS, slewS, resyncS } = this.opts;
    const duration = entry.serverEnd - entry.serverStart;
    if (entry.previous && this.splice(entry, buffer, duration)) return;
    const target = clock.serverToCtx(entry.serverStart);
    let start = target;
    let placement: ScheduledChunk["placement"] = "target";

    const before = this.neighbour(entry, "before");
    const after = this.neighbour(entry, "after");
    if (before) {
      const end = before.ctxStart + before.playS; // where the previous one stops sounding
      const error = target - end;
      if (Math.abs(error) <= resyncS) {
        start = end + Math.max(-slewS, Math.min(slewS, error));
        placement = "contiguous";
      } else {
        placement = "resync";
      }
    } else if (after) {
      const aligned = after.ctxStart - duration; // end exactly where the next one starts
      if (Math.abs(target - aligned) <= resyncS) {
        start = aligned;
        placement = "contiguous";
      }
    }

    const earliest = out.now() + leadS;
    let offset = 0;
    if (start < earliest) {
      offset = earliest - start;
      start = earliest;
      placement = "late";
    }
    if (offset >= duration - 0.005) {
      entry.state = "skipped"; // over before it could start
      this.opts.onPlaced?.(entry);
      return;
    }
    entry.ctxStart = start;
    entry.offsetS = offset;
    entry.playS = duration - offset;
    entry.placement = placement;
    entry.voice = out.play(buffer, start, offset, entry.playS);
    entry.state = "scheduled";
    this.opts.onPlaced?.(entry);
  }

  /**
   * Takes over from the previous revision at the splice point: the new source starts there, that
   * far into its buffer, and the old one stops there. Where the old one played from (its
   * ctxStart and offset) sets the context time, so the switch lands on the same sample of the
   * music. False (after silencing the old one where the new one will start) when the splice
   * point is too near or already past: then the chunk is placed as any late replacement.
   */
  private splice(entry: ScheduledChunk, buffer: B, duration: number): boolean {
    const { out, leadS } = this.opts;
    const old = entry.previous as ScheduledChunk;
    entry.previous = null;
    if (old.state !== "scheduled" || !old.voice) return false;
    const at = old.ctxStart + (entry.spliceS - old.offsetS);
    if (entry.spliceS < old.offsetS || at < out.now() + leadS || entry.spliceS >= duration) {
      this.cancel(old, out.now() + leadS);
      return false;
    }
    old.voice.stop(at);
    old.voice = null;
    old.state = "cancelled";
    entry.ctxStart = at;
    entry.offsetS = entry.spliceS;
    entry.playS = duration - entry.spliceS;
    entry.placement = "splice";
    entry.voice = out.play(buffer, at, entry.spliceS, entry.playS);
    entry.state = "scheduled";
    this.opts.onPlaced?.(entry);
    return true;
  }

  /** The scheduled chunk sounding at context time `ctxNow`, if any. */
  playingAt(ctxNow: number): ScheduledChunk | undefined {
    for (const c of this.chunks.values()) {
      if (c.state === "scheduled" && c.ctxStart <= ctxNow && ctxNow < c.ctxStart + c.playS) {
        return c;
      }
    }
    return undefined;
  }

  /** Seconds of scheduled audio ahead of `ctxNow`. */
  aheadS(ctxNow: number): number {
    let end = ctxNow;
    for (const c of this.list()) {
      if (c.state === "scheduled") end = Math.max(end, c.ctxStart + c.playS);
    }
    return end - ctxNow;
  }

  /** Silence everything and refuse further chunks (leaving the room). */
  stop(): void {
    this.stopped = true;
    for (const c of this.chunks.values()) {
      if (c.previous) this.cancel(c.previous);
      this.cancel(c);
    }
    this.chunks.clear();
  }

  private cancel(entry: ScheduledChunk, atCtx?: number): void {
    if (entry.voice) {
      const started = entry.ctxStart <= this.opts.out.now();
      // A source that has not started is cancelled outright; one that is sounding stops where
      // its replacement starts (or at once).
      const now = this.opts.out.now();
      entry.voice.stop(started && atCtx !== undefined ? Math.max(atCtx, now) : undefined);
      entry.voice = null;
    }
    entry.state = "cancelled";
  }

  private neighbour(entry: ScheduledChunk, side: "before" | "after"): ScheduledChunk | undefined {
    const tolerance = this.opts.contiguityS;
    for (const c of this.chunks.values()) {
      if (c === entry || c.state !== "scheduled") continue;
      if (side === "before" && Math.abs(c.serverEnd - entry.serverStart) <= tolerance) return c;
      if (
        side === "after" &&
        c.offsetS === 0 &&
        Math.abs(c.serverStart - entry.serverEnd) <= tolerance
      ) {
        return c;
      }
    }
    return undefined;
  }

  private forgetOld(): void {
    const horizon = this.opts.out.now() - KEEP_PAST_S;
    for (const [sequence, c] of this.chunks) {
      if (c.state !== "loading" && c.ctxStart + c.playS < horizon) this.chunks.delete(sequence);
    }
  }
}
