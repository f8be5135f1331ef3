import { describe, expect, it } from "vitest";
import {
  approvalDone,
  approvalFrame,
  approvalOnly,
  authorKey,
  canRestrictAuthor,
  durationLabel,
  muteFromError,
  muteFromNotice,
  mutedKeys,
  mutedLabel,
  muteOver,
  RESTRICTION_CHOICES,
  restrictFrame,
  restrictionDone,
  unmuteFrame,
} from "../src/moderation";
import type { Proposal, Snapshot } from "../src/protocol";
import { applyBroadcast, fromSnapshot } from "../src/room-state";

const clock = (unixS: number) => `t${unixS}`; // a fixed "time of day", so no locale or zone

const proposal = (author: string | null, id = 7): Proposal => ({
  id, kind: "prompt", text: "more cowbell", control: {}, status: "approved", author,
});

describe("host frames", () => {
  it("mutes and kicks the author of a proposal by its id, for an offered duration", () => {
    expect(restrictFrame("mute", 7, 60)).toEqual({ type: "mute", proposal_id: 7, minutes: 60 });
    expect(restrictFrame("kick", 7, 1440)).toEqual({ type: "kick", proposal_id: 7, minutes: 1440 });
    expect(restrictFrame("unmute", 7)).toEqual({ type: "unmute", proposal_id: 7 });
  });

  it("offers 10 minutes, an hour and a day, each within the server's 1–1440", () => {
    expect(RESTRICTION_CHOICES.map((c) => c.minutes)).toEqual([10, 60, 1440]);
    expect(RESTRICTION_CHOICES.map((c) => durationLabel(c.minutes))).toEqual(["10 min", "1 hour", "1 day"]);
  });

  it("refuses a duration it does not offer and an id that is not a proposal's", () => {
    expect(() => restrictFrame("mute", 7, 5)).toThrow(RangeError);
    expect(() => restrictFrame("kick", 7)).toThrow(RangeError);
    expect(() => restrictFrame("mute", 0, 10)).toThrow(RangeError);
    expect(() => restrictFrame("mute", 1.5, 10)).toThrow(RangeError);
  });

  it("turns the approval-only ballot on and off, and reads it from the room's mode", () => {
    expect(approvalFrame(true)).toEqual({ type: "approval", on: true });
    expect(approvalFrame(false)).toEqual({ type: "approval", on: false });
    expect(approvalOnly("audience")).toBe(true);
    expect(approvalOnly("friends")).toBe(false);
    expect(approvalDone(true)).toMatch(/on/);
    expect(approvalDone(false)).toMatch(/off/);
  });

  it("offers mute and kick to the host only, and never on the host's own ideas", () => {
    expect(canRestrictAuthor(proposal("bob"), "host", "alice")).toBe(true);
    expect(canRestrictAuthor(proposal(null), "host", "alice")).toBe(true); // a signed-out author
    expect(canRestrictAuthor(proposal("alice"), "host", "alice")).toBe(false);
    expect(canRestrictAuthor(proposal("bob"), "participant", "alice")).toBe(false);
  });

  it("tells the host what was done, with the end time the server gave", () => {
    const ack = { type: "ack", of: "mute", minutes: 60, until: 1000 };
    expect(restrictionDone("mute", ack, "“more cowbell”", clock)).toBe(
      "Muted the author of “more cowbell” for 1 hour (until t1000).",
    );
    expect(restrictionDone("kick", { ...ack, of: "kick", minutes: 10 }, "“x”", clock)).toBe(
      "Removed from the room the author of “x” for 10 min (until t1000).",
    );
    expect(restrictionDone("unmute", { type: "ack" }, "“x”", clock)).toBe("Unmuted the author of “x”.");
  });
});

describe("a participant's mute", () => {
  const muted = { type: "notice", code: "muted", message: "The host muted you for 10 min.", until: 600 };

  it("is set by a muted notice, with its local end time, and cleared by unmuted", () => {
    const mute = muteFromNotice(null, muted, clock);
    expect(mute).toEqual({ until: 600, message: "The host muted you for 10 min. It ends at t600." });
    expect(muteFromNotice(mute, { type: "notice", code: "unmuted", message: "…" })).toBeNull();
  });

  it("ignores notices it does not know", () => {
    const mute = muteFromNotice(null, muted, clock);
    expect(muteFromNotice(mute, { type: "notice", code: "something_new" })).toBe(mute);
    expect(muteFromNotice(null, { type: "notice", code: "something_new" })).toBeNull();
  });

  it("learns of a mute from a muted error, and keeps one it knew from a notice", () => {
    expect(muteFromError(null, "The host muted you in this room.")).toEqual({
      until: null,
      message: "The host muted you in this room.",
    });
    const mute = muteFromNotice(null, muted, clock);
    expect(muteFromError(mute, "The host muted you in this room.")).toBe(mute);
  });

  it("runs out at its end time on the server's clock; without one it lasts until told", () => {
    const mute = muteFromNotice(null, muted, clock);
    expect(muteOver(mute, 599.9)).toBe(false);
    expect(muteOver(mute, 600)).toBe(true);
    expect(muteOver({ until: null, message: "m" }, 1e12)).toBe(false);
    expect(muteOver(null, 1e12)).toBe(false);
  });
});

describe("the moderated broadcast", () => {
  const snapshot = {
    type: "snapshot", protocol: "1", seq: 1, server_now: 0,
    room: { id: "r", title: "t", slug: "t", host: "alice", visibility: "public", mode: "friends",
            status: "live", anchor_prompt: "p", round_length_s: 20, slow_mode_s: 0,
            who_may_propose: "everyone", login_required: false, timeline_origin: 0 },
    state: "live", round: null, ballot: [], blend: [], chunks: [], presence: 1,
    you: { role: "participant", voted_for: null },
  } as Snapshot;

  it("announces the moderators' message and ends the room when they closed it", () => {
    const change = applyBroadcast(fromSnapshot(snapshot), {
      type: "moderated", seq: 2, action: "closed", reason: "spam", message: "Closed by the moderators: spam.",
    });
    expect(change.announce).toBe("Closed by the moderators: spam.");
    expect(change.state.status).toBe("ended");
  });

  it("leaves a hidden room's status as it was (admins keep listening)", () => {
    const change = applyBroadcast(fromSnapshot(snapshot), { type: "moderated", seq: 2, action: "hid", message: "Hidden." });
    expect(change.state.status).toBe("live");
    expect(change.announce).toBe("Hidden.");
  });
});

describe("the host's list of mutes, from the snapshot", () => {
  const bob = { username: "bob", until: 900, proposal_ids: [] };
  const guest = { username: null, until: 600, proposal_ids: [11, 12] };

  it("marks a muted account's ideas, and a muted guest's ideas on the ballot or waiting", () => {
    const keys = mutedKeys([bob, guest]);

    expect(keys.has(authorKey(proposal("bob", 3)))).toBe(true);
    expect(keys.has(authorKey(proposal(null, 11)))).toBe(true);
    expect(keys.has(authorKey({ ...proposal(null, 12), status: "pending" }))).toBe(true);
    expect(keys.has(authorKey(proposal(null, 13)))).toBe(false); // another guest
    expect(keys.has(authorKey(proposal("carol", 4)))).toBe(false);
  });

  it("remembers nothing when the snapshot lists nobody (or is not a host's)", () => {
    expect(mutedKeys(undefined).size).toBe(0);
    expect(mutedKeys([]).size).toBe(0);
  });

  it("unmutes an account by name and a guest by one of their ideas", () => {
    expect(unmuteFrame(bob)).toEqual({ type: "unmute", username: "bob" });
    expect(unmuteFrame(guest)).toEqual({ type: "unmute", proposal_id: 11 });
    expect(unmuteFrame({ username: null, until: 1, proposal_ids: [] })).toBeNull();
  });

  it("reads each entry with who and until when", () => {
    expect(mutedLabel(bob, clock)).toBe("bob, until t900");
    expect(mutedLabel(guest, clock)).toBe("a guest, until t600");
  });
});
