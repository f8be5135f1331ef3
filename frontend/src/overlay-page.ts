// The streamer overlay (an OBS browser source): now playing, the ballot with its tallies and the
// countdown, on a transparent page. It listens to the room's socket; it never plays audio.

import { byId, h } from "./dom";
import { RoomSocket, roomSocketUrl } from "./protocol";
import {
  applyBroadcast,
  countdownS,
  describeBlend,
  proposalLabel,
  type RoomState,
  fromSnapshot,
} from "./room-state";

export function startOverlay(roomId: string, shareToken: string | null): RoomSocket {
  let state: RoomState | null = null;
  const render = () => {
    if (!state) return;
    byId("ov-title")!.textContent = state.room.title;
    byId("ov-now")!.textContent = describeBlend(state.blend);
    byId("ov-round")!.textContent = state.round ? `Round ${state.round.number}` : "";
    const total = Object.values(state.tally).reduce((a, b) => a + b, 0);
    const rows = [...state.ballot]
      .sort((a, b) => (state!.tally[String(b.id)] ?? 0) - (state!.tally[String(a.id)] ?? 0))
      .slice(0, 6)
      .map((p) => {
        const votes = state!.tally[String(p.id)] ?? 0;
        const pct = total ? Math.round((votes / total) * 100) : 0;
        return h(
          "li",
          {},
          h("span", { class: "label" }, proposalLabel(p)),
          h("span", { class: "bar", "aria-hidden": "true" }, h("span", { style: `width:${pct}%` })),
          h("span", { class: "count" }, `${votes}`),
        );
      });
    byId("ov-ballot")!.replaceChildren(...rows);
    byId("ov-empty")!.hidden = rows.length > 0;
  };
  const socket = new RoomSocket(roomSocketUrl(location, roomId, shareToken), {
    snapshot: (s) => {
      state = fromSnapshot(s);
      render();
    },
    broadcast: (f) => {
      if (!state) return;
      const change = applyBroadcast(state, f);
      state = change.state;
      if (change.announce) byId("ov-result")!.textContent = change.announce;
      render();
    },
    status: (status) => {
      byId("ov-conn")!.hidden = status === "open";
    },
  });
  socket.connect();
  window.setInterval(() => {
    if (!state) return;
    const left = countdownS(state.round, socket.clock.toServer(Date.now() / 1000));
    byId("ov-countdown")!.textContent =
      state.status !== "live" ? state.status : left === null ? "" : `${Math.ceil(left)} s`;
  }, 250);
  return socket;
}
