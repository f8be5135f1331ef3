// Clock maths for synced playback (docs/protocol.md, "Playing in time"). Pure: no DOM, no
// sockets, so the unit tests drive it with made-up times.
//
// Three clocks meet here:
//   server   unix seconds on the server (chunk start times, round deadlines);
//   local    this browser's wall clock in seconds (what `ping` sends as t0);
//   context  the AudioContext clock (what AudioBufferSourceNode.start() takes).
// ClockOffsetEstimator bridges server and local from ping/pong; AudioClockMap bridges local and
// context, including the output latency (the time from scheduling a sample to hearing it).

/** One ping/pong exchange: t0 and t3 on the local clock, t1 and t2 on the server's. */
export interface PingExchange {
  t0: number;
  t1: number;
  t2: number;
  t3: number;
}

export interface OffsetSample {
  /** Network round trip, seconds: the time on the wire, without the server's own time. */
  rtt: number;
  /** Server clock minus local clock, seconds. */
  offset: number;
  /** Local time the sample was taken (t3). */
  at: number;
}

export function offsetSample({ t0, t1, t2, t3 }: PingExchange): OffsetSample {
  return {
    rtt: t3 - t0 - (t2 - t1),
    offset: (t1 - t0 + (t2 - t3)) / 2,
    at: t3,
  };
}

export interface OffsetEstimatorOptions {
  /** How many of the lowest-RTT samples are averaged. */
  best: number;
  /** How many recent samples are kept to choose from. */
  window: number;
  /** Samples older than this (seconds) are forgotten, so clock drift is followed. */
  maxAgeS: number;
}

const DEFAULT_OFFSET_OPTIONS: OffsetEstimatorOptions = { best: 3, window: 12, maxAgeS: 180 };

/**
 * Estimates the server clock's offset from ping/pong exchanges: the samples with the smallest
 * round trip carry the least queueing asymmetry, so the estimate is the mean offset of the few
 * best among recent samples (NTP's minimum-delay filter).
 */
export class ClockOffsetEstimator {
  private samples: OffsetSample[] = [];
  private readonly options: OffsetEstimatorOptions;

  constructor(options: Partial<OffsetEstimatorOptions> = {}) {
    this.options = { ...DEFAULT_OFFSET_OPTIONS, ...options };
  }

  /** Adds one exchange. Exchanges that make no sense (negative RTT) are refused: false. */
  add(exchange: PingExchange): boolean {
    const sample = offsetSample(exchange);
    if (!Number.isFinite(sample.rtt) || !Number.isFinite(sample.offset) || sample.rtt < 0) {
      return false;
    }
    this.samples.push(sample);
    const oldest = sample.at - this.options.maxAgeS;
    this.samples = this.samples.filter((s) => s.at >= oldest).slice(-this.options.window);
    return true;
  }

  /** Forgets everything (after a reconnect the server may be another process). */
  reset(): void {
    this.samples = [];
  }

  get sampleCount(): number {
    return this.samples.length;
  }

  /** The lowest-RTT samples the estimate is made of, best first. */
  best(): OffsetSample[] {
    return [...this.samples].sort((a, b) => a.rtt - b.rtt).slice(0, this.options.best);
  }

  /** Server clock minus local clock (seconds), or null before the first sample. */
  get offset(): number | null {
    const best = this.best();
    if (best.length === 0) return null;
    return best.reduce((sum, s) => sum + s.offset, 0) / best.length;
  }

  /** The smallest round trip seen among the kept samples (seconds), or null. */
  get minRtt(): number | null {
    const best = this.best();
    return best.length ? best[0].rtt : null;
  }

  /** Server time for a local time (the offset must be known). */
  toServer(localS: number): number {
    return localS + (this.offset ?? 0);
  }

  /** Local time for a server time (the offset must be known). */
  toLocal(serverS: number): number {
    return serverS - (this.offset ?? 0);
  }
}

/**
 * When to ping: a burst on connect (the estimate is ready within a second), then a few at
 * `settleGapS` (the first pings often meet a server busy with the join, and a quieter moment
 * gives a sample with a smaller round trip, so the estimate settles early rather than minutes
 * later), then one every `intervalS` to follow drift. Pure: `nextDelayS()` says how long to
 * wait before the next ping.
 */
export class ProbeSchedule {
  private sent = 0;

  constructor(
    readonly burst = 5,
    readonly burstGapS = 0.25,
    readonly intervalS = 15,
    readonly settle = 6,
    readonly settleGapS = 2,
  ) {}

  /** Start again with a burst (a new connection). */
  restart(): void {
    this.sent = 0;
  }

  /** Seconds to wait before the next ping; call once per ping sent. */
  nextDelayS(): number {
    this.sent += 1;
    if (this.sent === 1) return 0;
    if (this.sent <= this.burst) return this.burstGapS;
    if (this.sent <= this.burst + this.settle) return this.settleGapS;
    return this.intervalS;
  }
}

/**
 * Maps the AudioContext clock to the local clock (performance time, milliseconds), so that a
 * sample scheduled at context time T is *heard* at performance time ctxToPerf(T).
 *
 * Observations come from AudioContext.getOutputTimestamp(), whose contextTime is the sample
 * being output at performanceTime: the output latency is already inside the pair. Where only
 * currentTime is available, pass the latency (outputLatency + baseLatency) and it is added.
 * The lag (performance ms minus context ms) is the median of recent observations: each one
 * jitters by a render quantum or a callback, the median does not.
 */
export class AudioClockMap {
  private lags: number[] = [];

  constructor(
    private readonly window = 12,
    /** Observations needed before the map is trusted (the output clock settles after start). */
    private readonly settleAfter = 4,
  ) {}

  observe(contextTimeS: number, performanceTimeMs: number, latencyS = 0): void {
    if (!(contextTimeS > 0) || !Number.isFinite(performanceTimeMs)) return; // not running yet
    this.lags.push(performanceTimeMs - (contextTimeS - latencyS) * 1000);
    if (this.lags.length > this.window) this.lags.shift();
  }

  get ready(): boolean {
    return this.lags.length > 0;
  }

  get settled(): boolean {
    return this.lags.length >= this.settleAfter;
  }

  /** Performance ms minus context ms at the output. */
  get lagMs(): number {
    const sorted = [...this.lags].sort((a, b) => a - b);
    if (sorted.length === 0) return 0;
    const mid = sorted.length >> 1;
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  }

  ctxToPerfMs(contextTimeS: number): number {
    return contextTimeS * 1000 + this.lagMs;
  }

  perfMsToCtx(performanceTimeMs: number): number {
    return (performanceTimeMs - this.lagMs) / 1000;
  }
}

/**
 * The whole chain server → local → performance → context, as the scheduler needs it.
 * `timeOriginMs` is performance.timeOrigin; `skewS` a deliberate error in the local clock that
 * the bench uses to prove the estimator removes it (0 in real use).
 */
export class Timebase {
  constructor(
    readonly offset: ClockOffsetEstimator,
    readonly audio: AudioClockMap,
    readonly timeOriginMs: number,
    readonly skewS = 0,
  ) {}

  /** The local clock (seconds) at performance time `perfMs`: what ping's t0 is taken from. */
  localAt(perfMs: number): number {
    return (this.timeOriginMs + perfMs) / 1000 + this.skewS;
  }

  perfAtLocal(localS: number): number {
    return (localS - this.skewS) * 1000 - this.timeOriginMs;
  }

  /** Context time at which a sample must start to be heard at server time `serverS`. */
  serverToCtx(serverS: number): number {
    return this.audio.perfMsToCtx(this.perfAtLocal(this.offset.toLocal(serverS)));
  }

  /** Server time at which a sample started at context time `ctxS` is heard. */
  ctxToServer(ctxS: number): number {
    return this.offset.toServer(this.localAt(this.audio.ctxToPerfMs(ctxS)));
  }
}
