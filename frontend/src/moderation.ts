// The host's tools against a disruptive participant (mute, kick, the approval-only ballot) as
// frames, and what the room page says about them: to the host when the server answers, to the
// participant when the host acts. Pure: no DOM, no socket (docs/protocol.md, host messages and
// the `notice` frame; docs/moderation.md).

import type { Frame, MutedEntry, Proposal } from "./protocol";

/** How long a mute or a kick lasts: the choices the ballot offers (the server allows 1–1440). */
export const RESTRICTION_CHOICES: ReadonlyArray<{ minutes: number; label: string }> = [
  { minutes: 10, label: "10 min" },
  { minutes: 60, label: "1 hour" },
  { minutes: 1440, label: "1 day" },
];

export type Restriction = "mute" | "unmute" | "kick";

/** The frame that mutes, unmutes or kicks the author of a proposal on the ballot. The author is
 * named by `proposal_id`, not username, so that signed-out participants can be reached too. */
export function restrictFrame(kind: Restriction, proposalId: number, minutes?: number): Frame {
  if (!Number.isInteger(proposalId) || proposalId <= 0) {
    throw new RangeError(`not a proposal id: ${proposalId}`);
  }
  if (kind === "unmute") return { type: "unmute", proposal_id: proposalId };
  if (!RESTRICTION_CHOICES.some((c) => c.minutes === minutes)) {
    throw new RangeError(`not one of the offered durations: ${minutes}`);
  }
  return { type: kind, proposal_id: proposalId, minutes };
}

/** Whose mute a Mute/Unmute button shows: an account by name, a signed-out author by idea. */
export function authorKey(p: Proposal): string {
  return p.author ? `user:${p.author}` : `proposal:${p.id}`;
}

/** The authors the host's snapshot lists as muted, as authorKey() names them: accounts by
 * name, signed-out visitors by each of their ideas on the ballot or waiting. */
export function mutedKeys(muted: readonly MutedEntry[] | undefined): Set<string> {
  const keys = new Set<string>();
  for (const entry of muted ?? []) {
    if (entry.username) keys.add(`user:${entry.username}`);
    else for (const id of entry.proposal_ids) keys.add(`proposal:${id}`);
  }
  return keys;
}

/** The frame that unmutes a listed participant: by name, or by one of a visitor's ideas; null
 * for a visitor with no idea left to point at (their mute runs out by itself). */
export function unmuteFrame(entry: MutedEntry): Frame | null {
  if (entry.username) return { type: "unmute", username: entry.username };
  const id = entry.proposal_ids[0];
  return id === undefined ? null : restrictFrame("unmute", id);
}

/** How the host's list of mutes reads one: "bob, until 14:32" or "a guest, until 14:32". */
export function mutedLabel(entry: MutedEntry, clock: ClockFormat = localClock): string {
  return `${entry.username ?? "a guest"}, until ${clock(entry.until)}`;
}

/** Audience mode on (proposals wait for the host) or off (friends mode). */
export function approvalFrame(on: boolean): Frame {
  return { type: "approval", on };
}

/** Whether the room is in approval-only (audience) mode, from its `room.mode`. */
export function approvalOnly(mode: string): boolean {
  return mode === "audience";
}

/** Whether the host sees mute and kick on this idea (on the ballot or waiting for approval):
 * never on their own (the server refuses to restrict the host). */
export function canRestrictAuthor(p: Proposal, role: string, host: string): boolean {
  return role === "host" && p.author !== host;
}

/** "10 min", "1 hour", "1 day"; any other number of minutes as minutes. */
export function durationLabel(minutes: number): string {
  return RESTRICTION_CHOICES.find((c) => c.minutes === minutes)?.label ?? `${minutes} min`;
}

/** A clock time ("14:32"), in the visitor's locale, of a unix time in seconds. */
export type ClockFormat = (unixS: number) => string;

export const localClock: ClockFormat = (unixS) =>
  new Date(unixS * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

/** What the host reads once the server acknowledged a mute, unmute or kick. */
export function restrictionDone(
  kind: Restriction,
  ack: Frame,
  whose: string,
  clock: ClockFormat = localClock,
): string {
  if (kind === "unmute") return `Unmuted the author of ${whose}.`;
  const minutes = Number(ack.minutes);
  const until = typeof ack.until === "number" ? ` (until ${clock(ack.until)})` : "";
  const done = kind === "mute" ? "Muted the author of" : "Removed from the room the author of";
  return `${done} ${whose} for ${durationLabel(minutes)}${until}.`;
}

/** What the host reads once the approval-only ballot changed. */
export function approvalDone(on: boolean): string {
  return on
    ? "Approval-only ballot on: new ideas wait for you under “Waiting for approval”."
    : "Approval-only ballot off: new ideas go on the ballot at once.";
}

/** A participant's mute, as the page keeps it: until when (server time), and what to show. */
export interface MuteState {
  until: number | null;
  message: string;
}

/** What a `notice` frame does to the participant's mute: a `muted` notice sets it (its message,
 * and the local time it ends), `unmuted` clears it. Other codes leave it as it was. */
export function muteFromNotice(
  current: MuteState | null,
  frame: Frame,
  clock: ClockFormat = localClock,
): MuteState | null {
  if (frame.code === "unmuted") return null;
  if (frame.code !== "muted") return current;
  const until = typeof frame.until === "number" ? frame.until : null;
  const base = String(frame.message ?? "The host muted you: you may listen, not propose or vote.");
  return { until, message: until === null ? base : `${base} It ends at ${clock(until)}.` };
}

/** A `muted` error answering a proposal or a vote (a mute this page missed the notice of, for
 * example from before a reload): its message says for how long. A mute already known stays as
 * it is (its notice said until when). */
export function muteFromError(current: MuteState | null, message: string): MuteState {
  return current ?? { until: null, message };
}

/** Whether a mute has run out by `serverNow` (a mute without `until` lasts until told). */
export function muteOver(mute: MuteState | null, serverNow: number): boolean {
  return mute !== null && mute.until !== null && serverNow >= mute.until;
}
