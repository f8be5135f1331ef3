// The room's audio graph: one AudioContext (started by the Join button, a user gesture), a gain
// for the room's music and one for auditions (previews), which duck the room while they play.
// Implements the scheduler's AudioOut and keeps the context-to-performance clock map fresh.

import { AudioClockMap } from "./clock";
import type { AudioOut, Voice } from "./scheduler";

const DUCKED_GAIN = 0.25;
const DUCK_RAMP_S = 0.15;
const CLOCK_SAMPLE_MS = 250;

export class RoomAudio implements AudioOut<AudioBuffer> {
  readonly ctx: AudioContext;
  readonly clockMap = new AudioClockMap();
  private readonly roomGain: GainNode;
  private readonly auditionGain: GainNode;
  private readonly buffers = new Map<string, Promise<AudioBuffer>>();
  private volume = 1;
  private audition: AudioBufferSourceNode | null = null;
  private clockTimer: number | undefined;

  constructor() {
    this.ctx = new AudioContext({ latencyHint: "playback" });
    this.roomGain = new GainNode(this.ctx, { gain: 1 });
    this.auditionGain = new GainNode(this.ctx, { gain: 1 });
    this.roomGain.connect(this.ctx.destination);
    this.auditionGain.connect(this.ctx.destination);
  }

  /** Must run inside a user gesture (the Join button's click). */
  async start(): Promise<void> {
    await this.ctx.resume();
    this.sampleClock();
    this.clockTimer = window.setInterval(() => this.sampleClock(), CLOCK_SAMPLE_MS);
  }

  async close(): Promise<void> {
    window.clearInterval(this.clockTimer);
    await this.ctx.close();
  }

  /** Output latency in seconds, as the browser reports it (for display). */
  get latencyS(): number {
    return (this.ctx.outputLatency || 0) + (this.ctx.baseLatency || 0);
  }

  private sampleClock(): void {
    if (this.ctx.state !== "running") return;
    const stamp = this.ctx.getOutputTimestamp?.();
    if (stamp && stamp.contextTime && stamp.performanceTime) {
      // contextTime is the sample at the speaker at performanceTime: latency is inside.
      this.clockMap.observe(stamp.contextTime, stamp.performanceTime);
    } else {
      this.clockMap.observe(this.ctx.currentTime, performance.now(), this.latencyS);
    }
  }

  now(): number {
    return this.ctx.currentTime;
  }

  play(buffer: AudioBuffer, whenCtx: number, offsetS: number, durationS: number): Voice {
    const source = new AudioBufferSourceNode(this.ctx, { buffer });
    source.connect(this.roomGain);
    source.start(whenCtx, offsetS, durationS);
    return {
      stop: (at?: number) => {
        try {
          source.stop(at ?? 0);
        } catch {
          // already stopped
        }
      },
    };
  }

  /** Fetches and decodes a chunk (each URL once). */
  load(url: string): Promise<AudioBuffer> {
    let pending = this.buffers.get(url);
    if (!pending) {
      pending = fetch(url, { credentials: "same-origin" }).then(async (response) => {
        if (!response.ok) throw new Error(`${response.status} for ${url}`);
        return this.ctx.decodeAudioData(await response.arrayBuffer());
      });
      pending.catch(() => this.buffers.delete(url));
      this.buffers.set(url, pending);
      if (this.buffers.size > 64) this.buffers.delete(this.buffers.keys().next().value!);
    }
    return pending;
  }

  setVolume(volume: number): void {
    this.volume = volume;
    const ducked = this.audition !== null;
    this.roomGain.gain.setTargetAtTime(ducked ? volume * DUCKED_GAIN : volume, this.ctx.currentTime, 0.02);
    this.auditionGain.gain.setTargetAtTime(volume, this.ctx.currentTime, 0.02);
  }

  /** Plays a proposal's preview now, ducking the room; resolves when it ends or is stopped. */
  async playAudition(url: string): Promise<void> {
    this.stopAudition();
    const buffer = await this.load(url);
    const source = new AudioBufferSourceNode(this.ctx, { buffer });
    source.connect(this.auditionGain);
    this.audition = source;
    const t = this.ctx.currentTime;
    this.roomGain.gain.setTargetAtTime(this.volume * DUCKED_GAIN, t, DUCK_RAMP_S / 3);
    source.start();
    await new Promise<void>((resolve) => (source.onended = () => resolve()));
    if (this.audition === source) {
      this.audition = null;
      this.roomGain.gain.setTargetAtTime(this.volume, this.ctx.currentTime, DUCK_RAMP_S / 3);
    }
  }

  stopAudition(): void {
    if (!this.audition) return;
    try {
      this.audition.stop();
    } catch {
      // not started
    }
  }

  get auditioning(): boolean {
    return this.audition !== null;
  }
}
