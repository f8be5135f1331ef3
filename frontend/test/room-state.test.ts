import { describe, expect, it } from "vitest";
import type { Snapshot } from "../src/protocol";
import { applyBroadcast, countdownS, describeBlend, fromSnapshot } from "../src/room-state";

const snapshot: Snapshot = {
  type: "snapshot",
  protocol: "1",
  seq: 5,
  server_now: 100,
  room: {
    id: "r", title: "Jam", slug: "jam", host: "alice", visibility: "public", mode: "friends",
    status: "live", anchor_prompt: "lo-fi", round_length_s: 20, slow_mode_s: 0,
    who_may_propose: "everyone", login_required: false, timeline_origin: 0,
  },
  state: "live",
  round: { number: 3, opened_at: 90, ends_at: 110 },
  ballot: [{ id: 1, kind: "prompt", text: "add strings", control: {}, status: "approved", author: "bob", votes: 2 }],
  blend: [{ key: "anchor", kind: "anchor", label: "lo-fi", weight: 1 }],
  chunks: [],
  presence: 2,
  you: { role: "participant", voted_for: 1 },
};

describe("room state", () => {
  it("reads the tally and my vote from the snapshot", () => {
    const s = fromSnapshot(snapshot);
    expect(s.tally).toEqual({ "1": 2 });
    expect(s.votedFor).toBe(1);
  });

  it("takes a tally only for the open round", () => {
    const s = fromSnapshot(snapshot);
    expect(applyBroadcast(s, { type: "tally", round: 2, tally: { "1": 9 }, votes: 9 }).state.tally).toEqual({ "1": 2 });
    expect(applyBroadcast(s, { type: "tally", round: 3, tally: { "1": 4 }, votes: 4 }).state.totalVotes).toBe(4);
  });

  it("a round result opens the next round, clears my vote and is announced", () => {
    const change = applyBroadcast(fromSnapshot(snapshot), {
      type: "round_result",
      round: 3,
      blend: [
        { key: "1", kind: "prompt", label: "add strings", weight: 0.6 },
        { key: "anchor", kind: "anchor", label: "lo-fi", weight: 0.4 },
      ],
      next_round: { number: 4, opened_at: 110, ends_at: 130 },
      ballot: [],
      cut: false,
    });
    expect(change.state.round?.number).toBe(4);
    expect(change.state.votedFor).toBeNull();
    expect(change.announce).toBe("Round 3 closed. Up next: 60% add strings, 40% lo-fi.");
  });

  it("a vetoed proposal leaves the ballot, and applying it twice changes nothing more", () => {
    const veto = { type: "proposal", proposal: { ...snapshot.ballot[0], status: "rejected" } };
    const once = applyBroadcast(fromSnapshot(snapshot), veto).state;
    expect(once.ballot).toEqual([]);
    expect(applyBroadcast(once, veto).state.ballot).toEqual([]);
  });

  it("an audition gives its proposal a preview", () => {
    const s = applyBroadcast(fromSnapshot(snapshot), {
      type: "audition", seq: 6, proposal_id: 1, url: "/a.ogg", duration_s: 5,
    }).state;
    expect(s.ballot[0].audition).toEqual({ url: "/a.ogg", duration_s: 5 });
  });

  it("counts down on the server's clock and never below zero", () => {
    expect(countdownS(snapshot.round, 104.5)).toBeCloseTo(5.5, 9);
    expect(countdownS(snapshot.round, 200)).toBe(0);
    expect(describeBlend(snapshot.blend)).toBe("100% lo-fi");
  });
});
