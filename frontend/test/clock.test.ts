import { describe, expect, it } from "vitest";
import {
  AudioClockMap,
  ClockOffsetEstimator,
  offsetSample,
  ProbeSchedule,
  Timebase,
} from "../src/clock";

/** A ping exchange against a server whose clock is `offset` ahead, with given one-way delays. */
function exchange(t0: number, offset: number, up: number, down: number, serverHold = 0.001) {
  const t1 = t0 + up + offset;
  const t2 = t1 + serverHold;
  const t3 = t2 - offset + down;
  return { t0, t1, t2, t3 };
}

describe("offsetSample", () => {
  it("recovers the offset exactly when the path is symmetric", () => {
    const s = offsetSample(exchange(100, 2.5, 0.02, 0.02));
    expect(s.offset).toBeCloseTo(2.5, 9);
    expect(s.rtt).toBeCloseTo(0.04, 9);
  });

  it("is off by half the asymmetry when the path is not", () => {
    const s = offsetSample(exchange(100, -1, 0.05, 0.01));
    expect(s.offset).toBeCloseTo(-1 + 0.02, 9);
    expect(s.rtt).toBeCloseTo(0.06, 9);
  });
});

describe("ClockOffsetEstimator", () => {
  it("has no offset before the first sample", () => {
    const est = new ClockOffsetEstimator();
    expect(est.offset).toBeNull();
    expect(est.minRtt).toBeNull();
  });

  it("keeps the minimum-RTT samples and ignores a congested one", () => {
    const est = new ClockOffsetEstimator({ best: 3 });
    est.add(exchange(0, 5, 0.01, 0.01));
    est.add(exchange(1, 5, 0.012, 0.011));
    est.add(exchange(2, 5, 0.011, 0.012));
    // A queued-up exchange: 400 ms stuck one way, which alone would be 200 ms off.
    est.add(exchange(3, 5, 0.4, 0.01));
    expect(est.offset).toBeCloseTo(5, 3);
    expect(est.minRtt).toBeCloseTo(0.02, 6);
    expect(est.best().map((s) => s.rtt)).not.toContainEqual(expect.closeTo(0.41, 3));
  });

  it("averages the best samples", () => {
    const est = new ClockOffsetEstimator({ best: 2 });
    est.add(exchange(0, 1.0, 0.01, 0.01));
    est.add(exchange(1, 1.004, 0.01, 0.01));
    est.add(exchange(2, 3, 0.5, 0.5)); // far worse RTT: not among the best two
    expect(est.offset).toBeCloseTo(1.002, 6);
  });

  it("refuses an exchange with a negative round trip", () => {
    const est = new ClockOffsetEstimator();
    expect(est.add({ t0: 10, t1: 10, t2: 10.5, t3: 10.1 })).toBe(false);
    expect(est.sampleCount).toBe(0);
  });

  it("forgets samples past the window so a drifting clock is followed", () => {
    const est = new ClockOffsetEstimator({ best: 1, window: 3, maxAgeS: 1000 });
    est.add(exchange(0, 1, 0.001, 0.001)); // a superb but old sample
    for (let i = 1; i <= 3; i++) est.add(exchange(i * 20, 1.1, 0.01, 0.01));
    expect(est.sampleCount).toBe(3);
    expect(est.offset).toBeCloseTo(1.1, 6);
  });

  it("forgets samples older than maxAgeS", () => {
    const est = new ClockOffsetEstimator({ best: 1, window: 50, maxAgeS: 60 });
    est.add(exchange(0, 1, 0.001, 0.001));
    est.add(exchange(100, 2, 0.05, 0.05));
    expect(est.sampleCount).toBe(1);
    expect(est.offset).toBeCloseTo(2, 6);
  });

  it("converts between local and server time both ways", () => {
    const est = new ClockOffsetEstimator();
    est.add(exchange(50, 12.25, 0.01, 0.01));
    expect(est.toServer(60)).toBeCloseTo(72.25, 6);
    expect(est.toLocal(72.25)).toBeCloseTo(60, 6);
  });

  it("reset forgets everything", () => {
    const est = new ClockOffsetEstimator();
    est.add(exchange(0, 1, 0.01, 0.01));
    est.reset();
    expect(est.offset).toBeNull();
  });
});

describe("ProbeSchedule", () => {
  it("sends a burst at connect, a few to settle, then one per interval; bursts on restart", () => {
    const p = new ProbeSchedule(3, 0.25, 15, 2, 2);
    const delays = Array.from({ length: 7 }, () => p.nextDelayS());
    expect(delays).toEqual([0, 0.25, 0.25, 2, 2, 15, 15]);
    p.restart();
    expect(p.nextDelayS()).toBe(0);
  });
});

describe("AudioClockMap", () => {
  it("maps context time to performance time with the output latency inside", () => {
    const map = new AudioClockMap();
    // currentTime 2.0 s observed at performance 5000 ms, with 40 ms of output latency: the
    // sample at context 1.96 s is the one heard at 5000 ms.
    map.observe(2.0, 5000, 0.04);
    expect(map.ctxToPerfMs(1.96)).toBeCloseTo(5000, 6);
    expect(map.perfMsToCtx(6000)).toBeCloseTo(2.96, 6);
  });

  it("takes the median lag, so one late callback does not move it", () => {
    const map = new AudioClockMap();
    for (const jitter of [0, 0.5, -0.4, 0.2, 30, -0.1, 0.3]) map.observe(1, 1000 + jitter);
    expect(map.lagMs).toBeCloseTo(0.2, 6);
  });

  it("is trusted only once a few observations are in", () => {
    const map = new AudioClockMap(12, 4);
    for (let i = 1; i <= 3; i++) map.observe(i, 1000 * i + 7);
    expect(map.settled).toBe(false);
    map.observe(4, 4007);
    expect(map.settled).toBe(true);
  });

  it("forgets old observations, so a start-up lag does not stay", () => {
    const map = new AudioClockMap(4, 1);
    map.observe(1, 1030); // the output clock had not settled yet
    for (let i = 2; i <= 5; i++) map.observe(i, 1000 * i + 5);
    expect(map.lagMs).toBeCloseTo(5, 6);
  });

  it("ignores observations taken before the context runs", () => {
    const map = new AudioClockMap();
    map.observe(0, 123);
    expect(map.ready).toBe(false);
  });
});

describe("Timebase", () => {
  it("round-trips server time through the context clock, skew and all", () => {
    const offset = new ClockOffsetEstimator();
    const audio = new AudioClockMap();
    const skew = 3.7; // this browser's wall clock is 3.7 s fast
    const timeOrigin = 1_700_000_000_000;
    const tb = new Timebase(offset, audio, timeOrigin, skew);
    // The server's clock is the true clock: a symmetric ping taken at performance 1000 ms.
    const t0 = tb.localAt(1000);
    const trueT = (timeOrigin + 1010) / 1000;
    offset.add({ t0, t1: trueT, t2: trueT, t3: tb.localAt(1020) });
    audio.observe(4.0, 2000, 0.05); // context 3.95 s is heard at performance 2000 ms
    const heardAt = (timeOrigin + 2500) / 1000; // a server time 500 ms later
    expect(tb.serverToCtx(heardAt)).toBeCloseTo(4.45, 6);
    expect(tb.ctxToServer(4.45)).toBeCloseTo(heardAt, 6);
  });
});
