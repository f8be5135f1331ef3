// What a room page knows about its room, and how each frame changes it. Pure functions over
// plain data (frames carry state, not differences: applying one twice does no harm).

import type { BlendPart, Frame, Proposal, RoomInfo, RoundInfo, Snapshot } from "./protocol";

export interface RoomState {
  room: RoomInfo;
  status: string;
  round: RoundInfo | null;
  ballot: Proposal[];
  tally: Record<string, number>;
  totalVotes: number;
  blend: BlendPart[];
  presence: number;
  role: "host" | "participant" | "listener";
  votedFor: number | null;
  pending: Proposal[];
}

export interface Change {
  state: RoomState;
  /** A sentence for the live region, when the change is worth announcing. */
  announce?: string;
}

export function fromSnapshot(s: Snapshot): RoomState {
  const tally: Record<string, number> = {};
  for (const p of s.ballot) tally[String(p.id)] = p.votes ?? 0;
  return {
    room: s.room,
    status: s.state,
    round: s.round,
    ballot: [...s.ballot],
    tally,
    totalVotes: Object.values(tally).reduce((a, b) => a + b, 0),
    blend: s.blend,
    presence: s.presence,
    role: s.you.role,
    votedFor: s.you.voted_for,
    pending: s.pending ?? [],
  };
}

function upsert(list: Proposal[], p: Proposal): Proposal[] {
  const i = list.findIndex((x) => x.id === p.id);
  if (i < 0) return [...list, p];
  const copy = [...list];
  copy[i] = { ...copy[i], ...p };
  return copy;
}

/** "62% more bass, 38% warm lo-fi…": the blend in words. */
export function describeBlend(blend: BlendPart[]): string {
  return [...blend]
    .sort((a, b) => b.weight - a.weight)
    .map((part) => `${Math.round(part.weight * 100)}% ${part.label}`)
    .join(", ");
}

const CONTROL_WORDS: Record<string, string> = {
  bpm: "tempo",
  energy: "energy",
  brightness: "brightness",
  key: "key",
  mode: "mode",
  section: "section",
  instruments_in: "bring in",
  instruments_out: "take out",
};

/** A control nudge in words: {"bpm": "+8"} -> "tempo +8". */
export function describeControl(control: Record<string, unknown>): string {
  return Object.entries(control)
    .map(([k, v]) => `${CONTROL_WORDS[k] ?? k} ${Array.isArray(v) ? v.join(", ") : String(v)}`)
    .join(", ");
}

export function proposalLabel(p: Proposal): string {
  return p.kind === "control" && (!p.text || p.text === "") ? describeControl(p.control) : p.text;
}

export function applyBroadcast(state: RoomState, frame: Frame): Change {
  switch (frame.type) {
    case "proposal": {
      const p = frame.proposal as Proposal;
      if (p.status === "approved") {
        return {
          state: {
            ...state,
            ballot: upsert(state.ballot, p),
            pending: state.pending.filter((x) => x.id !== p.id),
          },
        };
      }
      if (p.status === "pending") return { state: { ...state, pending: upsert(state.pending, p) } };
      // rejected (vetoed): off the ballot and out of the music
      return {
        state: {
          ...state,
          ballot: state.ballot.filter((x) => x.id !== p.id),
          pending: state.pending.filter((x) => x.id !== p.id),
          votedFor: state.votedFor === p.id ? null : state.votedFor,
        },
        announce: `Taken off the ballot: ${proposalLabel(p)}.`,
      };
    }
    case "tally": {
      if (state.round && frame.round !== state.round.number) return { state };
      const tally = (frame.tally as Record<string, number>) ?? {};
      return { state: { ...state, tally, totalVotes: Number(frame.votes ?? 0) } };
    }
    case "round_result": {
      const ballot = (frame.ballot as Proposal[]) ?? [];
      const tally: Record<string, number> = {};
      for (const p of ballot) tally[String(p.id)] = p.votes ?? 0;
      const blend = (frame.blend as BlendPart[]) ?? state.blend;
      const cut = frame.cut ? " (hard cut)" : "";
      return {
        state: {
          ...state,
          round: (frame.next_round as RoundInfo) ?? state.round,
          ballot,
          tally,
          totalVotes: 0,
          blend,
          votedFor: null,
        },
        announce: `Round ${frame.round} closed${cut}. Up next: ${describeBlend(blend)}.`,
      };
    }
    case "steering":
      return { state: { ...state, blend: (frame.blend as BlendPart[]) ?? state.blend } };
    case "presence":
      return { state: { ...state, presence: Number(frame.count ?? state.presence) } };
    case "state": {
      const status = String(frame.status);
      const words: Record<string, string> = {
        paused: "The host paused the room.",
        live: "The room is live.",
        ended: "The host ended the room.",
      };
      return {
        state: {
          ...state,
          status,
          room: (frame.room as RoomInfo) ?? state.room,
          round: (frame.round as RoundInfo | null) ?? state.round,
        },
        announce: status !== state.status ? words[status] : undefined,
      };
    }
    case "audition": {
      const id = Number(frame.proposal_id);
      const audition = { url: String(frame.url), duration_s: Number(frame.duration_s) };
      return {
        state: {
          ...state,
          ballot: state.ballot.map((p) => (p.id === id ? { ...p, audition } : p)),
        },
      };
    }
    case "moderated":
      // The moderators closed, removed or hid the room; the socket closes next (4451).
      return {
        state: { ...state, status: frame.action === "hid" ? state.status : "ended" },
        announce: String(frame.message || "A moderator closed this room."),
      };
    default:
      return { state };
  }
}

/** Seconds left in the round on the server's clock (never negative). */
export function countdownS(round: RoundInfo | null, serverNow: number): number | null {
  if (!round) return null;
  return Math.max(0, round.ends_at - serverNow);
}
