// The room page: connects to the room's socket, draws the ballot, the blend and the countdown,
// and, after Join, plays the room's chunks in time with everyone else.
// The markup (labels, headings, live regions) is the template's (webapp/templates/rooms/room.html);
// this module fills it in and wires it up.

import { RoomAudio } from "./audio";
import { Timebase } from "./clock";
import { announce, byId, h, randomId } from "./dom";
import {
  type ChunkAnnouncement,
  ChunkScheduler,
  type ScheduledChunk,
} from "./scheduler";
import {
  approvalDone,
  approvalFrame,
  approvalOnly,
  authorKey,
  canRestrictAuthor,
  mutedKeys,
  mutedLabel,
  muteFromError,
  muteFromNotice,
  muteOver,
  type MuteState,
  RESTRICTION_CHOICES,
  type Restriction,
  restrictFrame,
  restrictionDone,
  unmuteFrame,
} from "./moderation";
import {
  type ErrorFrame,
  type Frame,
  type MutedEntry,
  type Proposal,
  RequestError,
  RoomSocket,
  roomSocketUrl,
  type Snapshot,
} from "./protocol";
import {
  applyBroadcast,
  countdownS,
  describeBlend,
  proposalLabel,
  type RoomState,
  fromSnapshot,
} from "./room-state";

export interface RoomConfig {
  room_id: string;
  share_token: string | null;
  signed_in: boolean;
}

/** What the e2e tests and the sync bench read (window.__chorus). */
export interface PlacedRecord {
  sequence: number;
  revision: number;
  placement: string;
  serverStart: number;
  /** Context time the played part starts, and how far into the chunk it starts. */
  ctxStart: number;
  offsetS: number;
  playS: number;
  /** Performance time (ms) at which the chunk's beginning is heard (offset taken out). */
  heardPerfMs: number;
  /** This browser's own estimate of that moment on the server's clock. */
  estimatedServerStart: number;
  /** The context-to-performance lag (ms) used, and the clock offset estimate (s), at placing. */
  lagMs: number;
  clockOffsetS: number;
}

const STATUS_WORDS = {
  connecting: "Connecting…",
  open: "Connected",
  reconnecting: "Connection lost; reconnecting…",
  closed: "Disconnected",
  not_found: "This room is not available.",
  refused: "You can no longer listen to this room.",
};

export class RoomPage {
  readonly socket: RoomSocket;
  state: RoomState | null = null;
  audio: RoomAudio | null = null;
  timebase: Timebase | null = null;
  scheduler: ChunkScheduler<AudioBuffer> | null = null;
  readonly placed: PlacedRecord[] = [];
  private joined = false;
  private readonly known = new Map<number, ChunkAnnouncement>(); // chunks heard of, by sequence
  private readonly blendAt = new Map<number, string>(); // what each chunk was made under
  private nowPlayingSeq: number | null = null;
  private nowPlayingText = "";
  private thumbs = new Map<number, "up" | "down">();
  private readonly ballotRows = new Map<number, BallotRow>();
  private readonly pendingRows = new Map<number, PendingRow>();
  private readonly skewS: number;
  private readonly announcer = byId("announcer");
  /** The host muted me (from a `notice`, or a `muted` error answering a proposal or a vote). */
  private mute: MuteState | null = null;
  /** Host only: who is muted, from the snapshot (so a reload remembers) and this page's own
   * mutes since; an author listed here gets Unmute instead of Mute (keys: authorKey()). */
  readonly mutedAuthors = new Set<string>();
  private muted: MutedEntry[] = [];
  /** Why the server closed the socket for good (a kick, a ban, the moderators), in its words. */
  private finalWords: string | null = null;

  constructor(readonly config: RoomConfig) {
    const skewMs = Number(new URLSearchParams(location.search).get("clock_skew_ms") ?? 0);
    this.skewS = Number.isFinite(skewMs) ? skewMs / 1000 : 0;
    this.socket = new RoomSocket(
      roomSocketUrl(location, config.room_id, config.share_token),
      {
        snapshot: (s) => this.onSnapshot(s),
        broadcast: (f) => this.onBroadcast(f),
        status: (status, detail) =>
          this.setConnection(
            (status === "refused" ? this.finalWords : null) ?? detail ?? STATUS_WORDS[status],
          ),
        error: (f) => this.onUnaskedError(f),
        notice: (f) => this.onNotice(f),
        clock: () => this.flushChunks(),
      },
      () => this.localNow(),
    );
  }

  /** The local clock in seconds (skewed on purpose only by the sync bench's ?clock_skew_ms=). */
  localNow(): number {
    return (performance.timeOrigin + performance.now()) / 1000 + this.skewS;
  }

  serverNow(): number {
    return this.socket.clock.toServer(this.localNow());
  }

  start(): void {
    this.wireControls();
    this.socket.connect();
    window.setInterval(() => this.tick(), 250);
  }

  // --- Frames ----------------------------------------------------------------------------------

  private onSnapshot(s: Snapshot): void {
    this.state = fromSnapshot(s);
    if (s.you.role === "host") this.setMuted(s.muted ?? []);
    if (this.scheduler) this.scheduler.timelineOrigin = s.room.timeline_origin;
    for (const c of s.chunks) this.noteChunk(c);
    this.render();
  }

  private onBroadcast(frame: Frame): void {
    if (!this.state) return;
    if (frame.type === "chunk") {
      this.noteChunk(frame as unknown as ChunkAnnouncement);
      return;
    }
    if (frame.type === "moderated") this.finalWords = String(frame.message ?? "") || null;
    const change = applyBroadcast(this.state, frame);
    this.state = change.state;
    if (change.announce) {
      announce(this.announcer, change.announce);
      if (frame.type === "round_result") this.say("last-result", change.announce);
    }
    this.render();
  }

  /** The host muted or unmuted me: said in the live region, and kept next to the propose and
   * vote controls while it lasts. */
  private onNotice(frame: Frame): void {
    this.setMute(muteFromNotice(this.mute, frame));
    announce(this.announcer, this.mute?.message ?? String(frame.message ?? ""));
  }

  /** An error frame that answers nothing: rate limits, and the last words before a final close
   * (kicked, banned, suspended), which the connection status keeps. */
  private onUnaskedError(frame: ErrorFrame): void {
    if (["kicked", "banned", "suspended"].includes(frame.code)) {
      this.finalWords = frame.message;
      announce(this.announcer, frame.message);
    }
    this.say("propose-status", frame.message);
  }

  private setMute(mute: MuteState | null): void {
    this.mute = mute;
    const note = byId("mute-note");
    if (!note) return;
    note.hidden = mute === null;
    note.textContent = mute?.message ?? "";
  }

  private noteChunk(chunk: ChunkAnnouncement): void {
    const known = this.known.get(chunk.sequence);
    if (known && (known.revision ?? 0) >= (chunk.revision ?? 0)) return;
    if (known && (chunk.revision ?? 0) > (known.revision ?? 0)) {
      for (const seq of this.known.keys()) if (seq > chunk.sequence) this.known.delete(seq);
    }
    this.known.set(chunk.sequence, chunk);
    if (!this.blendAt.has(chunk.sequence) && this.state) {
      this.blendAt.set(chunk.sequence, describeBlend(this.state.blend));
    }
    for (const seq of this.known.keys()) if (seq < chunk.sequence - 16) this.known.delete(seq);
    this.flushChunks();
  }

  /** Hands known chunks to the scheduler once audio runs and the clock offset is known. */
  private flushChunks(): void {
    if (!this.scheduler || !this.clockReady()) return;
    for (const chunk of [...this.known.values()].sort((a, b) => a.sequence - b.sequence)) {
      this.scheduler.announce(chunk);
    }
  }

  private clockReady(): boolean {
    return this.socket.clock.sampleCount >= 3 && (this.audio?.clockMap.settled ?? false);
  }

  // --- Audio -----------------------------------------------------------------------------------

  private async ensureAudio(): Promise<RoomAudio> {
    if (!this.audio) {
      this.audio = new RoomAudio();
      await this.audio.start();
      this.timebase = new Timebase(
        this.socket.clock,
        this.audio.clockMap,
        performance.timeOrigin,
        this.skewS,
      );
      const volume = byId<HTMLInputElement>("volume");
      if (volume) this.audio.setVolume(Number(volume.value) / 100);
    }
    return this.audio;
  }

  async join(): Promise<void> {
    if (this.joined) return;
    this.joined = true;
    const audio = await this.ensureAudio();
    const timebase = this.timebase!;
    this.scheduler = new ChunkScheduler<AudioBuffer>({
      out: audio,
      clock: timebase,
      load: (url) => audio.load(url),
      timelineOrigin: this.state?.room.timeline_origin ?? 0,
      onPlaced: (c) => this.recordPlaced(c),
      onError: (c, e) => console.warn(`chunk ${c.sequence} failed`, e),
    });
    this.flushChunks();
    this.setJoined(true);
    announce(this.announcer, "Joined. The music starts in a moment.");
  }

  async leave(): Promise<void> {
    this.joined = false;
    this.scheduler?.stop();
    this.scheduler = null;
    await this.audio?.close();
    this.audio = null;
    this.timebase = null;
    this.nowPlayingSeq = null;
    this.setJoined(false);
    announce(this.announcer, "You left the music. The ballot stays open.");
  }

  private recordPlaced(c: ScheduledChunk): void {
    if (c.state !== "scheduled" || !this.audio || !this.timebase) return;
    const heardPerfMs = this.audio.clockMap.ctxToPerfMs(c.ctxStart) - c.offsetS * 1000;
    this.placed.push({
      sequence: c.sequence,
      revision: c.revision,
      placement: c.placement,
      serverStart: c.serverStart,
      ctxStart: c.ctxStart,
      offsetS: c.offsetS,
      playS: c.playS,
      heardPerfMs,
      estimatedServerStart: this.timebase.ctxToServer(c.ctxStart) - c.offsetS,
      lagMs: this.audio.clockMap.lagMs,
      clockOffsetS: this.socket.clock.offset ?? 0,
    });
    if (this.placed.length > 2000) this.placed.splice(0, 1000);
  }

  // --- Periodic: countdown, now playing, sync figures --------------------------------------

  private tick(): void {
    const state = this.state;
    if (!state) return;
    if (muteOver(this.mute, this.serverNow())) this.setMute(null);
    const countdown = byId("countdown");
    if (countdown) {
      const left = countdownS(state.round, this.serverNow());
      countdown.textContent =
        state.status === "paused"
          ? "paused"
          : state.status === "ended"
            ? "ended"
            : left === null
              ? "–"
              : `${Math.ceil(left)} s`;
    }
    if (this.scheduler && this.audio) {
      const playing = this.scheduler.playingAt(this.audio.now());
      const seq = playing?.sequence ?? null;
      if (seq !== this.nowPlayingSeq) {
        this.nowPlayingSeq = seq;
        this.renderThumbs();
        const text = seq === null ? "" : (this.blendAt.get(seq) ?? describeBlend(state.blend));
        if (text && text !== this.nowPlayingText) {
          this.nowPlayingText = text;
          this.say("now-playing", text);
          announce(this.announcer, `Now playing: ${text}.`);
        }
      }
      const info = byId("sync-info");
      if (info) {
        const rtt = this.socket.clock.minRtt;
        info.textContent =
          `${this.scheduler.aheadS(this.audio.now()).toFixed(1)} s buffered · ` +
          `round trip ${rtt === null ? "–" : Math.round(rtt * 1000)} ms · ` +
          `output latency ${Math.round(this.audio.latencyS * 1000)} ms`;
      }
    }
  }

  // --- Rendering -------------------------------------------------------------------------------

  private render(): void {
    const state = this.state;
    if (!state) return;
    this.say("presence-count", `${state.presence} listening`);
    this.say("round-number", state.round ? String(state.round.number) : "–");
    this.say("room-status", state.status === "live" ? "" : `(${state.status})`);
    this.renderBallot(state);
    this.renderBlend(state);
    this.renderRole(state);
    this.renderPending(state);
    this.renderMuted(state);
    if (!this.nowPlayingText) this.say("now-playing", describeBlend(state.blend));
  }

  private renderRole(state: RoomState): void {
    const canTakePart = state.role !== "listener" && state.status !== "ended";
    const form = byId("propose-form");
    form?.querySelectorAll<HTMLButtonElement | HTMLInputElement | HTMLSelectElement>(
      "input, button, select",
    ).forEach((el) => (el.disabled = !canTakePart));
    const why = byId("listener-note");
    if (why) {
      why.hidden = canTakePart;
      why.textContent =
        state.status === "ended"
          ? "This room has ended."
          : state.room.login_required
            ? "Sign in to propose and vote in this room."
            : "Listening only: reload the page to take part.";
    }
    const host = byId("host-panel");
    if (host) host.hidden = state.role !== "host";
    const approval = byId<HTMLButtonElement>("approval-toggle");
    const on = approvalOnly(state.room.mode);
    approval?.setAttribute("aria-pressed", String(on));
    const modeNote = byId("pending-mode");
    if (modeNote) modeNote.hidden = on;
    const pause = byId<HTMLButtonElement>("pause-button");
    if (pause) {
      pause.textContent = state.status === "paused" ? "Resume" : "Pause";
      pause.dataset.action = state.status === "paused" ? "resume" : "pause";
    }
  }

  private renderBallot(state: RoomState): void {
    const list = byId("ballot-list");
    if (!list) return;
    const total = Object.values(state.tally).reduce((a, b) => a + b, 0);
    const seen = new Set<number>();
    for (const p of state.ballot) {
      seen.add(p.id);
      let row = this.ballotRows.get(p.id);
      if (!row) {
        row = new BallotRow(p, this);
        this.ballotRows.set(p.id, row);
        list.append(row.el);
      }
      row.update(p, state.tally[String(p.id)] ?? 0, total, state.votedFor === p.id, state);
    }
    for (const [id, row] of this.ballotRows) {
      if (!seen.has(id)) {
        row.el.remove();
        this.ballotRows.delete(id);
      }
    }
    const empty = byId("ballot-empty");
    if (empty) empty.hidden = state.ballot.length > 0;
    this.say("vote-total", `${total} vote${total === 1 ? "" : "s"}`);
  }

  private renderBlend(state: RoomState): void {
    const list = byId("blend-list");
    if (!list) return;
    list.replaceChildren(
      ...[...state.blend]
        .sort((a, b) => b.weight - a.weight)
        .map((part) => {
          const pct = Math.round(part.weight * 100);
          return h(
            "li",
            {},
            h("span", { class: "bar", "aria-hidden": "true" }, h("span", { style: `width:${pct}%` })),
            h("span", { class: "label" }, `${pct}% · ${part.label}`),
          );
        }),
    );
  }

  private renderPending(state: RoomState): void {
    const list = byId("pending-list");
    if (!list || state.role !== "host") return;
    // Rows kept by id, as on the ballot: tallies re-render the page 4 times a second, and a
    // rebuilt row would lose its focus and its chosen duration.
    const seen = new Set<number>();
    for (const p of state.pending) {
      seen.add(p.id);
      let row = this.pendingRows.get(p.id);
      if (!row) {
        row = new PendingRow(p, this);
        this.pendingRows.set(p.id, row);
        list.append(row.el);
      }
      row.update(p, state);
    }
    for (const [id, row] of this.pendingRows) {
      if (!seen.has(id)) {
        row.el.remove();
        this.pendingRows.delete(id);
      }
    }
    const none = byId("pending-empty");
    if (none) none.hidden = state.pending.length > 0;
  }

  /** The host's list of who is muted now, each with Unmute where there is a way to name them. */
  private renderMuted(state: RoomState): void {
    const list = byId("muted-list");
    if (!list || state.role !== "host") return;
    const now = this.serverNow();
    const current = this.muted.filter((m) => m.until > now);
    const key = current.map((m) => `${m.username ?? m.proposal_ids.join(",")}@${m.until}`).join(" ");
    if (list.dataset.shown !== key) {
      list.dataset.shown = key;
      list.replaceChildren(
        ...current.map((m) => {
          const frame = unmuteFrame(m);
          const label = mutedLabel(m);
          return h(
            "li",
            {},
            h("span", {}, label, " "),
            frame
              ? h(
                  "button",
                  {
                    type: "button",
                    "aria-label": `Unmute ${label}`,
                    onclick: () => void this.unmute(m, frame),
                  },
                  "Unmute",
                )
              : h("span", { class: "meta" }, "(ends by itself)"),
          );
        }),
      );
    }
    const none = byId("muted-empty");
    if (none) none.hidden = current.length > 0;
  }

  private setMuted(muted: MutedEntry[]): void {
    this.muted = [...muted];
    this.mutedAuthors.clear();
    for (const key of mutedKeys(muted)) this.mutedAuthors.add(key);
  }

  private renderThumbs(): void {
    const seq = this.nowPlayingSeq;
    const value = seq === null ? undefined : this.thumbs.get(seq);
    for (const [id, v] of [
      ["thumb-up", "up"],
      ["thumb-down", "down"],
    ] as const) {
      const b = byId<HTMLButtonElement>(id);
      if (!b) continue;
      b.disabled = seq === null;
      b.setAttribute("aria-pressed", String(value === v));
    }
  }

  private setJoined(joined: boolean): void {
    const join = byId<HTMLButtonElement>("join-button");
    const leave = byId<HTMLButtonElement>("leave-button");
    if (join) join.hidden = joined;
    if (leave) leave.hidden = !joined;
    (joined ? leave : join)?.focus();
    this.renderThumbs();
  }

  private setConnection(text: string): void {
    this.say("conn-status", text);
  }

  /** Sets an element's text (by id), if the element exists. */
  say(id: string, text: string): void {
    const el = byId(id);
    if (el && el.textContent !== text) el.textContent = text;
  }

  // --- Actions ---------------------------------------------------------------------------------

  /** Sends a request; an error frame's message (written for people) goes to `statusId`. */
  async act(frame: Frame, statusId = "action-status"): Promise<Frame | null> {
    try {
      return await this.socket.request(frame);
    } catch (error) {
      const message =
        error instanceof RequestError ? error.frame.message : (error as Error).message;
      if (error instanceof RequestError && error.frame.code === "muted") {
        this.setMute(muteFromError(this.mute, message));
      }
      this.say(statusId, message);
      return null;
    }
  }

  async vote(p: Proposal): Promise<void> {
    const ack = await this.act({ type: "vote", proposal_id: p.id }, "propose-status");
    if (ack && this.state) {
      this.state = { ...this.state, votedFor: p.id };
      this.say("propose-status", `Your vote is in: ${proposalLabel(p)}.`);
      this.render();
    }
  }

  async preview(p: Proposal): Promise<void> {
    if (!p.audition) return;
    const audio = await this.ensureAudio();
    this.say("propose-status", `Previewing: ${proposalLabel(p)}.`);
    await audio.playAudition(p.audition.url);
    this.say("propose-status", "");
  }

  /** The host mutes, unmutes or kicks the author of an idea, on the ballot or waiting (by
   * proposal id, so signed-out authors too); the answer goes to `statusId`. */
  async restrict(
    kind: Restriction,
    p: Proposal,
    minutes: number,
    statusId = "ballot-status",
  ): Promise<void> {
    const whose = `“${proposalLabel(p)}”`;
    const ack = await this.act(restrictFrame(kind, p.id, minutes), statusId);
    if (!ack) return;
    const others = this.muted.filter((m) =>
      p.author ? m.username !== p.author : !m.proposal_ids.includes(p.id),
    );
    if (kind === "mute" && typeof ack.until === "number") {
      this.setMuted([...others, { username: p.author, until: ack.until, proposal_ids: p.author ? [] : [p.id] }]);
    } else if (kind !== "kick") {
      this.setMuted(others);
    }
    this.say(statusId, restrictionDone(kind, ack, whose));
    this.render();
  }

  /** The host unmutes someone from the list of mutes. */
  private async unmute(entry: MutedEntry, frame: Frame): Promise<void> {
    const ack = await this.act(frame);
    if (!ack) return;
    this.setMuted(this.muted.filter((m) => m !== entry));
    this.say("action-status", `Unmuted ${entry.username ?? "a guest"}.`);
    this.render();
  }

  private async setApprovalOnly(on: boolean): Promise<void> {
    const ack = await this.act(approvalFrame(on));
    if (ack) this.say("action-status", approvalDone(Boolean(ack.on)));
  }

  private async propose(body: Record<string, unknown>, describe: string): Promise<void> {
    const ack = await this.act({ type: "propose", ...body }, "propose-status");
    if (!ack) return;
    const p = ack.proposal as Proposal | undefined;
    this.say(
      "propose-status",
      p?.status === "pending"
        ? `Sent to the host for approval: ${describe}.`
        : `On the ballot: ${describe}.`,
    );
  }

  private async thumb(value: "up" | "down"): Promise<void> {
    const seq = this.nowPlayingSeq;
    if (seq === null) return;
    const ack = await this.act(
      { type: "thumb", sequence: seq, value, event_id: randomId() },
      "thumb-status",
    );
    if (ack) {
      this.thumbs.set(seq, value);
      this.renderThumbs();
      this.say("thumb-status", value === "up" ? "Liked this bit." : "Disliked this bit.");
    }
  }

  private wireControls(): void {
    byId("join-button")?.addEventListener("click", () => void this.join());
    byId("leave-button")?.addEventListener("click", () => void this.leave());
    byId<HTMLInputElement>("volume")?.addEventListener("input", (e) =>
      this.audio?.setVolume(Number((e.target as HTMLInputElement).value) / 100),
    );
    byId("thumb-up")?.addEventListener("click", () => void this.thumb("up"));
    byId("thumb-down")?.addEventListener("click", () => void this.thumb("down"));

    const form = byId<HTMLFormElement>("propose-form");
    const text = byId<HTMLInputElement>("proposal-text");
    form?.addEventListener("submit", (e) => {
      e.preventDefault();
      const value = text?.value.trim() ?? "";
      if (!value) {
        this.say("propose-status", "Type an idea first, for example “slower, add strings”.");
        text?.focus();
        return;
      }
      void this.propose({ text: value }, `“${value}”`).then(() => {
        if (text) text.value = "";
      });
    });
    form?.querySelectorAll<HTMLButtonElement>("button[data-control]").forEach((button) =>
      button.addEventListener("click", () =>
        void this.propose(
          { control: JSON.parse(button.dataset.control!) },
          button.textContent?.trim() ?? "",
        ),
      ),
    );
    byId("key-button")?.addEventListener("click", () => {
      const key = byId<HTMLSelectElement>("key-select")!.value;
      const mode = byId<HTMLSelectElement>("mode-select")!.value;
      const control: Record<string, string> = {};
      if (key) control.key = key;
      if (mode) control.mode = mode;
      if (!key && !mode) {
        this.say("propose-status", "Choose a key or a mode first.");
        return;
      }
      void this.propose({ control }, `key ${key} ${mode}`.trim());
    });
    for (const [id, field] of [
      ["instrument-in", "instruments_in"],
      ["instrument-out", "instruments_out"],
    ] as const) {
      byId(id)?.addEventListener("click", () => {
        const input = byId<HTMLInputElement>("instrument-input")!;
        const name = input.value.trim();
        if (!name) {
          this.say("propose-status", "Name an instrument first, for example “strings”.");
          input.focus();
          return;
        }
        const verb = field === "instruments_in" ? "bring in" : "take out";
        void this.propose({ control: { [field]: [name] } }, `${verb} ${name}`).then(
          () => (input.value = ""),
        );
      });
    }

    byId<HTMLFormElement>("keep-form")?.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.keep(e.target as HTMLFormElement);
    });

    byId("pause-button")?.addEventListener("click", (e) =>
      void this.act({ type: (e.target as HTMLElement).dataset.action ?? "pause" }),
    );
    byId("skip-round")?.addEventListener("click", () => void this.act({ type: "skip" }));
    byId("approval-toggle")?.addEventListener("click", (e) =>
      void this.setApprovalOnly((e.currentTarget as HTMLElement).getAttribute("aria-pressed") !== "true"),
    );
    byId("hard-cut")?.addEventListener("click", () => void this.act({ type: "hard_cut" }));
    byId("end-room")?.addEventListener("click", () => {
      if (confirm("End this room for everyone?")) void this.act({ type: "end" });
    });
    byId<HTMLFormElement>("slow-mode-form")?.addEventListener("submit", (e) => {
      e.preventDefault();
      const seconds = Number(byId<HTMLInputElement>("slow-seconds")!.value);
      void this.act({ type: "slow_mode", seconds }).then(
        (ack) => ack && this.say("action-status", seconds ? `Slow mode: ${seconds} s.` : "Slow mode off."),
      );
    });
  }

  private async keep(form: HTMLFormElement): Promise<void> {
    const data = new FormData(form);
    const seconds = Number(data.get("seconds"));
    this.say("keep-status", "Keeping…");
    const done = await this.act(
      {
        type: "keep",
        seconds,
        title: String(data.get("title") || "") || undefined,
        visibility: String(data.get("visibility") || "private"),
      } as Frame,
      "keep-status",
    );
    if (!done) return;
    const status = byId("keep-status");
    status?.replaceChildren(
      `Kept ${Math.round(Number(done.duration_s))} s as a song: `,
      h("a", { href: String(done.url) }, "open it"),
      ".",
    );
  }
}

/** The host's mute and kick for the author of one idea, with how long, as a group of controls:
 * on a ballot row and on a row waiting for approval alike. */
class HostTools {
  readonly el: HTMLDivElement;
  private readonly minutes: HTMLSelectElement;
  private readonly muteButton: HTMLButtonElement;
  private readonly kickButton: HTMLButtonElement;

  constructor(
    private proposal: Proposal,
    private readonly page: RoomPage,
    statusId: string,
  ) {
    this.minutes = h(
      "select",
      { class: "minutes" },
      ...RESTRICTION_CHOICES.map((c) => h("option", { value: c.minutes }, c.label)),
    );
    this.muteButton = h("button", { type: "button", class: "mute" }, "Mute author");
    this.muteButton.addEventListener("click", () => {
      const muted = page.mutedAuthors.has(authorKey(this.proposal));
      const kind = muted ? "unmute" : "mute";
      void page.restrict(kind, this.proposal, Number(this.minutes.value), statusId);
    });
    this.kickButton = h("button", { type: "button", class: "kick danger" }, "Kick author");
    this.kickButton.addEventListener("click", () =>
      void page.restrict("kick", this.proposal, Number(this.minutes.value), statusId),
    );
    this.el = h(
      "div",
      { class: "host-tools", role: "group" },
      this.muteButton,
      this.kickButton,
      h("label", {}, "for ", this.minutes),
    );
  }

  update(p: Proposal, state: RoomState): void {
    this.proposal = p;
    this.el.hidden = !canRestrictAuthor(p, state.role, state.room.host);
    if (this.el.hidden) return;
    const label = proposalLabel(p);
    const muted = this.page.mutedAuthors.has(authorKey(p));
    this.el.setAttribute("aria-label", `Host tools for the author of ${label}`);
    this.muteButton.textContent = muted ? "Unmute author" : "Mute author";
    this.muteButton.setAttribute("aria-label", `${muted ? "Unmute" : "Mute"} author of ${label}`);
    this.kickButton.setAttribute("aria-label", `Kick author of ${label}`);
    this.minutes.setAttribute("aria-label", `How long to mute or kick the author of ${label}`);
  }
}

/** One idea waiting for the host: approve, reject, or mute or kick its author. */
class PendingRow {
  readonly el: HTMLLIElement;
  private readonly label: HTMLSpanElement;
  private readonly author: HTMLSpanElement;
  private readonly approveButton: HTMLButtonElement;
  private readonly rejectButton: HTMLButtonElement;
  private readonly tools: HostTools;
  private proposal: Proposal;

  constructor(p: Proposal, page: RoomPage) {
    this.proposal = p;
    this.label = h("span", {});
    this.author = h("span", { class: "meta" });
    this.approveButton = h("button", { type: "button" }, "Approve");
    this.approveButton.addEventListener("click", () =>
      void page.act({ type: "approve", proposal_id: this.proposal.id }),
    );
    this.rejectButton = h("button", { type: "button" }, "Reject");
    this.rejectButton.addEventListener("click", () =>
      void page.act({ type: "reject", proposal_id: this.proposal.id }),
    );
    this.tools = new HostTools(p, page, "action-status");
    this.el = h(
      "li",
      { "data-proposal-id": p.id },
      h("span", {}, this.label, " ", this.author),
      this.approveButton,
      this.rejectButton,
      this.tools.el,
    );
  }

  update(p: Proposal, state: RoomState): void {
    this.proposal = p;
    const label = proposalLabel(p);
    if (this.label.textContent !== `${label} `) this.label.textContent = `${label} `;
    this.author.textContent = `by ${p.author ?? "a guest"}`;
    this.approveButton.setAttribute("aria-label", `Approve ${label}`);
    this.rejectButton.setAttribute("aria-label", `Reject ${label}`);
    this.tools.update(p, state);
  }
}

/** One proposal on the ballot: updated in place so focus stays on its buttons while tallies move. */
class BallotRow {
  readonly el: HTMLLIElement;
  private readonly label: HTMLSpanElement;
  private readonly author: HTMLSpanElement;
  private readonly fill: HTMLSpanElement;
  private readonly count: HTMLSpanElement;
  private readonly voteButton: HTMLButtonElement;
  private readonly previewButton: HTMLButtonElement;
  private readonly vetoButton: HTMLButtonElement;
  private readonly reportButton: HTMLButtonElement;
  /** Host only: mute or kick the author, for a time chosen from a small select. */
  private readonly hostTools: HostTools;
  private proposal: Proposal;

  constructor(
    p: Proposal,
    private readonly page: RoomPage,
  ) {
    this.proposal = p;
    this.label = h("span", { class: "label" });
    this.author = h("span", { class: "meta" });
    this.fill = h("span");
    this.count = h("span", { class: "count" });
    this.voteButton = h("button", { type: "button", class: "vote", "aria-pressed": "false" }, "Vote");
    this.voteButton.addEventListener("click", () => void page.vote(this.proposal));
    this.previewButton = h("button", { type: "button", class: "preview" }, "Preview");
    this.previewButton.addEventListener("click", () => void page.preview(this.proposal));
    this.vetoButton = h("button", { type: "button", class: "veto danger" }, "Veto");
    this.vetoButton.addEventListener("click", () =>
      void page.act({ type: "veto", proposal_id: this.proposal.id }, "ballot-status"),
    );
    // Opened by report-dialog.ts (wireReports, in entries/room.ts) from its data attributes, as the
    // template's buttons are.
    this.reportButton = h(
      "button",
      {
        type: "button",
        class: "link small report-button",
        "data-report-type": "proposal",
        "data-report-id": p.id,
        "data-report-share": page.config.share_token,
        "aria-haspopup": "dialog",
      },
      "Report",
    );
    this.hostTools = new HostTools(p, page, "ballot-status");
    this.el = h(
      "li",
      { class: "proposal", "data-proposal-id": p.id },
      h("div", { class: "what" }, this.label, " ", this.author, " ", this.reportButton),
      h("span", { class: "bar", "aria-hidden": "true" }, this.fill),
      this.count,
      h("div", { class: "actions" }, this.voteButton, this.previewButton, this.vetoButton),
      this.hostTools.el,
    );
  }

  update(p: Proposal, votes: number, total: number, mine: boolean, state: RoomState): void {
    this.proposal = p;
    const label = proposalLabel(p);
    const pct = total ? Math.round((votes / total) * 100) : 0;
    if (this.label.textContent !== label) this.label.textContent = label;
    this.author.textContent = `by ${p.author ?? "a guest"}`;
    this.fill.style.width = `${pct}%`;
    this.count.textContent = `${votes} vote${votes === 1 ? "" : "s"}${total ? ` (${pct}%)` : ""}`;
    this.voteButton.setAttribute("aria-pressed", String(mine));
    this.voteButton.textContent = mine ? "Voted" : "Vote";
    this.voteButton.setAttribute("aria-label", `${mine ? "Voted for" : "Vote for"} ${label}`);
    this.voteButton.disabled = state.role === "listener" || state.status === "ended";
    this.previewButton.hidden = !p.audition;
    this.previewButton.setAttribute("aria-label", `Preview ${label}`);
    this.vetoButton.hidden = state.role !== "host";
    this.vetoButton.setAttribute("aria-label", `Veto ${label}`);
    // Hosts mute or veto rather than report; signed-out visitors cannot report.
    this.reportButton.hidden = state.role === "host" || !this.page.config.signed_in;
    this.reportButton.dataset.reportWhat = `the idea “${label}”`;
    this.reportButton.setAttribute("aria-label", `Report ${label}`);
    this.hostTools.update(p, state);
    this.el.classList.toggle("mine", mine);
  }
}
