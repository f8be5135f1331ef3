import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type Frame, RoomSocket } from "../src/protocol";

/** Just enough of a WebSocket for RoomSocket: the test plays the server's side. */
class FakeSocket {
  static readonly OPEN = 1;
  static last: FakeSocket | null = null;
  readyState = 0;
  sent: Frame[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((e: { data: string }) => void) | null = null;
  onclose: ((e: { code: number }) => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.last = this;
  }
  send(text: string) {
    this.sent.push(JSON.parse(text));
  }
  close() {}
  open() {
    this.readyState = FakeSocket.OPEN;
    this.onopen?.();
  }
  receive(frame: Frame) {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
}

describe("frames to one participant (no seq)", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.stubGlobal("WebSocket", FakeSocket);
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  function connected() {
    const heard = { notices: [] as Frame[], broadcasts: [] as Frame[] };
    const socket = new RoomSocket("ws://test/ws/rooms/r/", {
      notice: (f) => heard.notices.push(f),
      broadcast: (f) => heard.broadcasts.push(f),
    });
    socket.connect();
    const server = FakeSocket.last!;
    server.open();
    server.receive({ type: "snapshot", seq: 10 } as Frame);
    return { heard, server };
  }

  it("hands a notice to the page, outside the room's seq", () => {
    const { heard, server } = connected();
    const notice = { type: "notice", code: "muted", message: "The host muted you.", until: 600 };
    server.receive(notice);
    expect(heard.notices).toEqual([notice]);
    // The room's numbering is untouched: the next broadcast is still the one after the snapshot.
    server.receive({ type: "presence", seq: 11, count: 3 });
    expect(heard.broadcasts.map((f) => f.seq)).toEqual([11]);
    expect(server.sent.some((f) => f.type === "snapshot")).toBe(false);
  });

  it("still drops other unnumbered frames nobody asked for", () => {
    const { heard, server } = connected();
    server.receive({ type: "ack", of: "vote" });
    server.receive({ type: "presence", count: 3 });
    expect(heard.notices).toEqual([]);
    expect(heard.broadcasts).toEqual([]);
  });
});
