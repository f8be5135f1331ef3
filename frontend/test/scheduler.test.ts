import { describe, expect, it } from "vitest";
import { type AudioOut, type ChunkAnnouncement, ChunkScheduler, type Voice } from "../src/scheduler";

interface Played {
  buffer: string;
  when: number;
  offset: number;
  duration: number;
  stoppedAt: number | "now" | null;
}

/** A fake AudioContext: a settable clock and a record of every source started and stopped. */
class FakeOut implements AudioOut<string> {
  time = 0;
  played: Played[] = [];
  now() {
    return this.time;
  }
  play(buffer: string, when: number, offset: number, duration: number): Voice {
    const p: Played = { buffer, when, offset, duration, stoppedAt: null };
    this.played.push(p);
    return { stop: (at?: number) => (p.stoppedAt = at === undefined ? "now" : at) };
  }
  live() {
    return this.played.filter((p) => p.stoppedAt === null);
  }
}

/** Loads resolve when the test says so, in any order. */
class Loader {
  pending = new Map<string, (b: string) => void>();
  failures = new Map<string, (e: Error) => void>();
  load = (url: string) =>
    new Promise<string>((resolve, reject) => {
      this.pending.set(url, resolve);
      this.failures.set(url, reject);
    });
  async resolve(url: string) {
    this.pending.get(url)!(url);
    await Promise.resolve();
    await Promise.resolve();
  }
  async fail(url: string) {
    this.failures.get(url)!(new Error("404"));
    await Promise.resolve();
    await Promise.resolve();
  }
}

const ORIGIN = 1000; // timeline_origin, server seconds

function setup(offsetCtx = -990, opts: Partial<{ leadS: number }> = {}) {
  const out = new FakeOut();
  const loader = new Loader();
  // serverToCtx: a fixed mapping server -> context (server 1000 s is context 10 s).
  const clock = { shift: offsetCtx, serverToCtx: (s: number) => s + clock.shift };
  const sched = new ChunkScheduler<string>({
    out,
    clock,
    load: loader.load,
    timelineOrigin: ORIGIN,
    ...opts,
  });
  return { out, loader, clock, sched };
}

const chunk = (sequence: number, start_s: number, duration_s = 2, revision = 0): ChunkAnnouncement => ({
  sequence,
  start_s,
  duration_s,
  revision,
  url: `/c/${sequence}.r${revision}.ogg`,
});

describe("ChunkScheduler", () => {
  it("starts each chunk at its server start time on the audio clock", async () => {
    const { out, loader, sched } = setup();
    out.time = 5;
    sched.announce(chunk(0, 1.0));
    await loader.resolve("/c/0.r0.ogg");
    expect(out.played).toHaveLength(1);
    expect(out.played[0]).toMatchObject({ when: 11, offset: 0, duration: 2 });
  });

  it("plays consecutive chunks back to back with no gap, whatever their length", async () => {
    const { out, loader, sched } = setup();
    const lengths = [2, 1, 1, 1.5, 0.96];
    let t = 1;
    lengths.forEach((d, i) => {
      sched.announce(chunk(i, t, d));
      t += d;
    });
    for (let i = 0; i < lengths.length; i++) await loader.resolve(`/c/${i}.r0.ogg`);
    for (let i = 1; i < out.played.length; i++) {
      const prev = out.played[i - 1];
      expect(out.played[i].when).toBeCloseTo(prev.when + prev.duration, 9);
    }
  });

  it("follows a drifting clock estimate by a tiny slew, never a jump", async () => {
    const { out, loader, clock, sched } = setup();
    sched.announce(chunk(0, 1));
    await loader.resolve("/c/0.r0.ogg");
    clock.shift += 0.004; // the offset estimate moved 4 ms
    sched.announce(chunk(1, 3));
    await loader.resolve("/c/1.r0.ogg");
    const gap = out.played[1].when - (out.played[0].when + out.played[0].duration);
    expect(gap).toBeGreaterThan(0);
    expect(gap).toBeLessThanOrEqual(0.002 + 1e-12);
    expect(sched.get(1)!.placement).toBe("contiguous");
  });

  it("slews a refined estimate of tens of milliseconds away over several chunks", async () => {
    const { out, loader, clock, sched } = setup();
    sched.announce(chunk(0, 1));
    await loader.resolve("/c/0.r0.ogg");
    clock.shift += 0.022; // a better ping sample moved the estimate 22 ms
    for (let n = 1; n <= 12; n++) {
      sched.announce(chunk(n, 1 + 2 * n));
      await loader.resolve(`/c/${n}.r0.ogg`);
    }
    for (let n = 1; n <= 12; n++) {
      const gap = out.played[n].when - (out.played[n - 1].when + out.played[n - 1].duration);
      expect(Math.abs(gap)).toBeLessThanOrEqual(0.002 + 1e-12);
      expect(sched.get(n)!.placement).toBe("contiguous");
    }
    // after 11 chunks of 2 ms the schedule is back on its target
    expect(out.played[12].when).toBeCloseTo(1 + 24 + ORIGIN + clock.shift, 9);
  });

  it("jumps to the target when the estimate moved by more than the resync limit", async () => {
    const { out, loader, clock, sched } = setup();
    sched.announce(chunk(0, 1));
    await loader.resolve("/c/0.r0.ogg");
    clock.shift += 0.25;
    sched.announce(chunk(1, 3));
    await loader.resolve("/c/1.r0.ogg");
    expect(out.played[1].when).toBeCloseTo(3 + ORIGIN + clock.shift, 9);
    expect(sched.get(1)!.placement).toBe("resync");
  });

  it("leaves the server's silence alone: a chunk after a pause starts on its own time", async () => {
    const { out, loader, sched } = setup();
    sched.announce(chunk(0, 1));
    sched.announce(chunk(1, 30)); // the room was paused in between
    await loader.resolve("/c/0.r0.ogg");
    await loader.resolve("/c/1.r0.ogg");
    expect(out.played[1].when).toBeCloseTo(30 + 10, 9);
  });

  it("starts a late joiner part-way into the chunk playing now", async () => {
    const { out, loader, sched } = setup(-990, { leadS: 0.03 });
    out.time = 11.5; // the chunk that started at context 11 has been playing 0.5 s
    sched.announce(chunk(0, 1.0));
    await loader.resolve("/c/0.r0.ogg");
    expect(out.played[0].when).toBeCloseTo(11.53, 9);
    expect(out.played[0].offset).toBeCloseTo(0.53, 9);
    expect(out.played[0].duration).toBeCloseTo(2 - 0.53, 9);
    expect(sched.get(0)!.placement).toBe("late");
  });

  it("skips a chunk that is already over when its audio arrives", async () => {
    const { out, loader, sched } = setup();
    out.time = 20;
    sched.announce(chunk(0, 1.0));
    await loader.resolve("/c/0.r0.ogg");
    expect(out.played).toHaveLength(0);
    expect(sched.get(0)!.state).toBe("skipped");
  });

  it("after a late start, the next chunk still follows without a gap", async () => {
    const { out, loader, sched } = setup();
    out.time = 11.5;
    sched.announce(chunk(0, 1));
    sched.announce(chunk(1, 3));
    await loader.resolve("/c/0.r0.ogg");
    await loader.resolve("/c/1.r0.ogg");
    expect(out.played[1].when).toBeCloseTo(out.played[0].when + out.played[0].duration, 9);
    expect(out.played[1].when).toBeCloseTo(13, 9);
  });

  it("ignores a chunk announced twice (a snapshot after a broadcast)", async () => {
    const { out, loader, sched } = setup();
    expect(sched.announce(chunk(0, 1))).toBe("new");
    expect(sched.announce(chunk(0, 1))).toBe("duplicate");
    await loader.resolve("/c/0.r0.ogg");
    expect(out.played).toHaveLength(1);
  });

  it("a higher revision replaces a chunk not started yet and drops the later ones", async () => {
    const { out, loader, sched } = setup();
    out.time = 5;
    sched.announce(chunk(4, 1));
    sched.announce(chunk(5, 3));
    sched.announce(chunk(6, 5));
    for (const s of [4, 5, 6]) await loader.resolve(`/c/${s}.r0.ogg`);
    expect(out.live()).toHaveLength(3);

    expect(sched.announce(chunk(5, 3, 2, 1))).toBe("replaced");
    // Chunk 5's old source is cancelled before it starts, chunk 6 is dropped.
    expect(out.played[1].stoppedAt).toBe("now");
    expect(out.played[2].stoppedAt).toBe("now");
    expect(sched.get(6)).toBeUndefined();
    await loader.resolve("/c/5.r1.ogg");
    const replacement = out.played[3];
    expect(replacement.buffer).toBe("/c/5.r1.ogg");
    expect(replacement.when).toBeCloseTo(out.played[0].when + 2, 9);
    // A lower or equal revision arriving late changes nothing.
    expect(sched.announce(chunk(5, 3, 2, 0))).toBe("duplicate");
    // Chunk 6 is re-announced by the server and plays after the replacement.
    sched.announce(chunk(6, 5));
    await loader.resolve("/c/6.r0.ogg");
    expect(out.played[4].when).toBeCloseTo(replacement.when + 2, 9);
  });

  it("a replacement of a chunk already sounding stops it where the new one starts", async () => {
    const { out, loader, sched } = setup();
    out.time = 5;
    sched.announce(chunk(0, 1));
    await loader.resolve("/c/0.r0.ogg");
    out.time = 11.4; // chunk 0 (context 11-13) is playing
    sched.announce(chunk(0, 1, 2, 1));
    expect(out.played[0].stoppedAt).toBeCloseTo(11.4, 9); // its start is past: stopped now
    await loader.resolve("/c/0.r1.ogg");
    const replacement = out.played[1];
    expect(replacement.offset).toBeGreaterThan(0.4);
    expect(replacement.when + replacement.duration).toBeCloseTo(13, 9);
  });

  it("a replacement that starts later than now stops the sounding chunk at that point", async () => {
    const { out, loader, sched } = setup();
    out.time = 5;
    sched.announce(chunk(0, 1));
    sched.announce(chunk(1, 3));
    await loader.resolve("/c/0.r0.ogg");
    await loader.resolve("/c/1.r0.ogg");
    out.time = 11.2; // chunk 0 is sounding
    sched.announce(chunk(0, 1.5, 1.5, 1)); // revised to start half a second in
    expect(out.played[0].stoppedAt).toBeCloseTo(11.5, 9);
    expect(out.played[1].stoppedAt).toBe("now"); // chunk 1 dropped
  });

  it("a chunk whose audio loads after it was replaced is never played", async () => {
    const { out, loader, sched } = setup();
    sched.announce(chunk(3, 1));
    sched.announce(chunk(3, 1, 2, 1));
    await loader.resolve("/c/3.r0.ogg"); // the stale revision arrives first
    expect(out.played).toHaveLength(0);
    await loader.resolve("/c/3.r1.ogg");
    expect(out.played.map((p) => p.buffer)).toEqual(["/c/3.r1.ogg"]);
  });

  it("aligns a chunk that loads after its successor to end where the successor starts", async () => {
    const { out, loader, clock, sched } = setup();
    sched.announce(chunk(0, 1));
    sched.announce(chunk(1, 3));
    await loader.resolve("/c/1.r0.ogg");
    clock.shift += 0.003;
    await loader.resolve("/c/0.r0.ogg");
    const [one, zero] = out.played;
    expect(zero.when + zero.duration).toBeCloseTo(one.when, 9);
  });

  it("reports a failed load and keeps going", async () => {
    const errors: number[] = [];
    const out = new FakeOut();
    const loader = new Loader();
    const sched = new ChunkScheduler<string>({
      out,
      clock: { serverToCtx: (s) => s - 990 },
      load: loader.load,
      timelineOrigin: ORIGIN,
      onError: (c) => errors.push(c.sequence),
    });
    sched.announce(chunk(0, 1));
    sched.announce(chunk(1, 3));
    await loader.fail("/c/0.r0.ogg");
    await loader.resolve("/c/1.r0.ogg");
    expect(errors).toEqual([0]);
    expect(out.played[0].when).toBeCloseTo(13, 9);
  });

  it("knows which chunk is sounding and how much audio is ahead", async () => {
    const { loader, sched } = setup();
    sched.announce(chunk(7, 1));
    sched.announce(chunk(8, 3));
    await loader.resolve("/c/7.r0.ogg");
    await loader.resolve("/c/8.r0.ogg");
    expect(sched.playingAt(12.5)?.sequence).toBe(7);
    expect(sched.playingAt(13.0)?.sequence).toBe(8);
    expect(sched.aheadS(12)).toBeCloseTo(3, 9);
  });

  it("a splice takes over from the sounding chunk on the same sample of the music", async () => {
    const { out, loader, sched } = setup();
    out.time = 5;
    sched.announce(chunk(0, 1));
    sched.announce(chunk(1, 3));
    await loader.resolve("/c/0.r0.ogg");
    await loader.resolve("/c/1.r0.ogg");
    out.time = 11.2; // chunk 0 (context 11-13) is sounding
    expect(sched.announce({ ...chunk(0, 1, 2, 1), splice_s: 1.0 })).toBe("replaced");
    // the old revision plays on until the new audio is in; the next chunk goes at once
    expect(out.played[0].stoppedAt).toBeNull();
    expect(out.played[1].stoppedAt).toBe("now");
    await loader.resolve("/c/0.r1.ogg");
    const remake = out.played[2];
    expect(out.played[0].stoppedAt).toBeCloseTo(12, 9); // 1.0 s into chunk 0
    expect(remake.when).toBeCloseTo(12, 9);
    expect(remake.offset).toBeCloseTo(1.0, 9); // the same point of the music
    expect(remake.when + remake.duration).toBeCloseTo(13, 9);
    expect(sched.get(0)?.placement).toBe("splice");
    // the branch's next chunk follows the remake without a gap
    sched.announce(chunk(1, 3, 2, 0));
    await loader.resolve("/c/1.r0.ogg");
    expect(out.played[3].when).toBeCloseTo(13, 9);
  });

  it("a splice follows where the old revision really started (a late joiner's offset)", async () => {
    const { out, loader, sched } = setup();
    out.time = 11.5; // joined mid-chunk: chunk 0 starts 0.53 s in (lead 0.03)
    sched.announce(chunk(0, 1));
    await loader.resolve("/c/0.r0.ogg");
    const first = out.played[0];
    expect(first.offset).toBeCloseTo(0.53, 9);
    sched.announce({ ...chunk(0, 1, 2, 1), splice_s: 1.5 });
    await loader.resolve("/c/0.r1.ogg");
    expect(out.played[1].when).toBeCloseTo(first.when + (1.5 - first.offset), 9);
    expect(out.played[1].offset).toBeCloseTo(1.5, 9);
  });

  it("a splice whose point has passed falls back to a late replacement", async () => {
    const { out, loader, sched } = setup();
    out.time = 5;
    sched.announce(chunk(0, 1));
    await loader.resolve("/c/0.r0.ogg");
    out.time = 11.2;
    sched.announce({ ...chunk(0, 1, 2, 1), splice_s: 0.5 });
    out.time = 11.6; // the audio arrives after the splice point (context 11.5)
    await loader.resolve("/c/0.r1.ogg");
    const remake = out.played[1];
    expect(out.played[0].stoppedAt).toBeCloseTo(11.63, 9); // where the remake starts
    expect(remake.when).toBeCloseTo(11.63, 9);
    expect(remake.offset).toBeCloseTo(0.63, 9);
    expect(sched.get(0)?.placement).toBe("late");
  });

  it("if a splice's audio never comes, the old revision plays on", async () => {
    const { out, loader, sched } = setup();
    out.time = 5;
    sched.announce(chunk(0, 1));
    await loader.resolve("/c/0.r0.ogg");
    out.time = 11.2;
    sched.announce({ ...chunk(0, 1, 2, 1), splice_s: 1.0 });
    await loader.fail("/c/0.r1.ogg");
    expect(out.played[0].stoppedAt).toBeNull();
    expect(out.played).toHaveLength(1);
  });

  it("stop() silences everything and refuses new chunks", async () => {
    const { out, loader, sched } = setup();
    sched.announce(chunk(0, 1));
    await loader.resolve("/c/0.r0.ogg");
    sched.stop();
    expect(out.played[0].stoppedAt).toBe("now");
    expect(sched.announce(chunk(1, 3))).toBe("ignored");
  });
});
