import { afterEach, describe, expect, it, vi } from "vitest";
import {
  MAX_DETAILS_CHARS,
  REPORT_REASONS,
  ReportInputError,
  reportBody,
  reportOutcome,
  reportTargetFrom,
  sendReport,
} from "../src/report";

const song = { type: "song" as const, id: "0b0e6f5e-1c1f-4a55-9f3c-2f43a0d7c1aa", what: "this song" };

describe("the report's body", () => {
  it("offers exactly the server's reasons", () => {
    expect(REPORT_REASONS.map((r) => r.value)).toEqual([
      "impersonation", "hate", "sexual", "spam", "copyright", "other",
    ]);
  });

  it("names the target, the reason and the trimmed details", () => {
    expect(reportBody(song, "hate", "  slurs at 0:40 ")).toEqual({
      target_type: "song", target_id: song.id, reason: "hate", details: "slurs at 0:40",
    });
  });

  it("leaves out empty details and carries a share token when there is one", () => {
    expect(reportBody({ ...song, shareToken: "tok" }, "spam", "   ")).toEqual({
      target_type: "song", target_id: song.id, reason: "spam", share_token: "tok",
    });
  });

  it("asks for a reason, and for details within the server's limit", () => {
    for (const reason of ["", "rude", "HATE"]) {
      expect(() => reportBody(song, reason, "")).toThrow(ReportInputError);
    }
    try {
      reportBody(song, "other", "x".repeat(MAX_DETAILS_CHARS + 1));
      expect.unreachable();
    } catch (error) {
      expect((error as ReportInputError).field).toBe("details");
    }
    expect(reportBody(song, "other", "x".repeat(MAX_DETAILS_CHARS)).details).toHaveLength(MAX_DETAILS_CHARS);
  });
});

describe("a report button's target", () => {
  it("is read from its data attributes", () => {
    expect(reportTargetFrom({ reportType: "proposal", reportId: "42", reportWhat: "the idea “x”" })).toEqual({
      type: "proposal", id: "42", what: "the idea “x”", shareToken: null,
    });
    expect(reportTargetFrom({ reportType: "room", reportId: "r", reportShare: "s" })).toEqual({
      type: "room", id: "r", what: "this room", shareToken: "s",
    });
  });

  it("is nothing without a known type or an id", () => {
    expect(reportTargetFrom({ reportType: "comment", reportId: "1" })).toBeNull();
    expect(reportTargetFrom({ reportType: "song" })).toBeNull();
  });
});

describe("the server's answer", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("thanks for a new report and says when an open one was updated", () => {
    expect(reportOutcome(201, {}, null)).toEqual({ ok: true, message: "Thanks: the moderators will look at it." });
    const again = reportOutcome(200, {}, null);
    expect(again.ok).toBe(true);
    expect(again.message).toMatch(/already reported/);
  });

  it("says to sign in on 401, that it is gone on 404", () => {
    expect(reportOutcome(401, { error: { code: "not_authenticated", message: "x" } }, null)).toEqual({
      ok: false, message: "Sign in to report.",
    });
    expect(reportOutcome(404, null, null).message).toMatch(/no longer here/);
  });

  it("says when to try again after too many reports", () => {
    expect(reportOutcome(429, null, "30").message).toBe("You have sent a lot of reports: try again in 30 s.");
    expect(reportOutcome(429, null, "600").message).toBe("You have sent a lot of reports: try again in 10 minutes.");
    expect(reportOutcome(429, null, null).message).toBe("You have sent a lot of reports: try again later.");
  });

  it("shows the server's own message for other refusals (your own account: 400)", () => {
    const body = { error: { code: "invalid", message: "You cannot report yourself." } };
    expect(reportOutcome(400, body, null)).toEqual({ ok: false, message: "You cannot report yourself." });
    expect(reportOutcome(500, "<html>", null).message).toMatch(/could not be sent/);
  });

  it("is posted as JSON with the CSRF token, and a lost connection is an answer too", async () => {
    const calls: RequestInit[] = [];
    // csrfToken() reads <meta name="csrf-token">; the tests run without a DOM.
    vi.stubGlobal("document", { querySelector: () => ({ content: "csrf-123" }) });
    const post = (async (_url: string, init: RequestInit) => {
      calls.push(init);
      return new Response(JSON.stringify({ id: 1, status: "open" }), { status: 201 });
    }) as unknown as typeof fetch;
    const outcome = await sendReport(reportBody(song, "spam", ""), post);
    expect(outcome.ok).toBe(true);
    expect(calls[0].method).toBe("POST");
    expect((calls[0].headers as Record<string, string>)["X-CSRFToken"]).toBe("csrf-123");
    expect(JSON.parse(String(calls[0].body)).reason).toBe("spam");

    const offline = (async () => {
      throw new TypeError("Failed to fetch");
    }) as unknown as typeof fetch;
    expect((await sendReport(reportBody(song, "spam", ""), offline)).ok).toBe(false);
  });
});
