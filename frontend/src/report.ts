// Reports to the moderators, as data: the reasons, the request body for POST /api/v1/reports/
// (docs/api.md), the server's answer in words, and which target a "Report" button names. Pure,
// apart from sendReport's fetch; the dialog is report-dialog.ts.

import { csrfToken } from "./dom";

export type ReportTargetType = "song" | "room" | "proposal" | "user";

export interface ReportTarget {
  type: ReportTargetType;
  id: string;
  /** What is being reported, in words: "this song", "“slower, add strings”". */
  what: string;
  /** The share token of an unlisted song or room reached by its link. */
  shareToken?: string | null;
}

/** The reasons the server takes (webapp/moderation/models.py, Report.Reason), in words. */
export const REPORT_REASONS: ReadonlyArray<{ value: string; label: string }> = [
  { value: "impersonation", label: "Impersonation: pretends to be someone else" },
  { value: "hate", label: "Hate or harassment" },
  { value: "sexual", label: "Sexual content" },
  { value: "spam", label: "Spam or scams" },
  { value: "copyright", label: "Copyright: someone else's work" },
  { value: "other", label: "Something else" },
];

export const MAX_DETAILS_CHARS = 1000; // the server's limit
export const REPORTS_ENDPOINT = "/api/v1/reports/";
const TARGET_TYPES: ReadonlySet<string> = new Set(["song", "room", "proposal", "user"]);

/** A report the form cannot send as it is; `field` names what to fix. */
export class ReportInputError extends Error {
  constructor(
    message: string,
    readonly field: "reason" | "details",
  ) {
    super(message);
  }
}

/** The JSON body of a report, or a ReportInputError saying what to fix first. */
export function reportBody(
  target: ReportTarget,
  reason: string,
  details: string,
): Record<string, string> {
  if (!REPORT_REASONS.some((r) => r.value === reason)) {
    throw new ReportInputError("Choose a reason first.", "reason");
  }
  const text = details.trim();
  if (text.length > MAX_DETAILS_CHARS) {
    throw new ReportInputError(
      `Keep it to ${MAX_DETAILS_CHARS} characters (this is ${text.length}).`,
      "details",
    );
  }
  return {
    target_type: target.type,
    target_id: target.id,
    reason,
    ...(text ? { details: text } : {}),
    ...(target.shareToken ? { share_token: target.shareToken } : {}),
  };
}

/** What a report button's data attributes name, or null if they name nothing reportable. */
export function reportTargetFrom(data: DOMStringMap): ReportTarget | null {
  const type = data.reportType ?? "";
  const id = data.reportId ?? "";
  if (!TARGET_TYPES.has(type) || !id) return null;
  return {
    type: type as ReportTargetType,
    id,
    what: data.reportWhat || `this ${type}`,
    shareToken: data.reportShare || null,
  };
}

export interface ReportOutcome {
  /** The report is with the moderators. */
  ok: boolean;
  message: string;
}

/** The server's answer in words: 201 a new report, 200 your open report updated, 401 signed
 * out, 404 gone (or never visible), 429 too many; other errors carry their own message. */
export function reportOutcome(status: number, body: unknown, retryAfter: string | null): ReportOutcome {
  const serverMessage = (body as { error?: { message?: unknown } } | null)?.error?.message;
  if (status === 201) return { ok: true, message: "Thanks: the moderators will look at it." };
  if (status === 200) {
    return { ok: true, message: "You had already reported this: your report is updated." };
  }
  if (status === 401) return { ok: false, message: "Sign in to report." };
  if (status === 404) return { ok: false, message: "This is no longer here, so it cannot be reported." };
  if (status === 429) {
    const seconds = Number(retryAfter);
    const wait =
      Number.isFinite(seconds) && seconds > 0
        ? seconds >= 120
          ? ` in ${Math.ceil(seconds / 60)} minutes`
          : ` in ${Math.ceil(seconds)} s`
        : " later";
    return { ok: false, message: `You have sent a lot of reports: try again${wait}.` };
  }
  if (typeof serverMessage === "string" && serverMessage) return { ok: false, message: serverMessage };
  return { ok: false, message: "The report could not be sent; try again." };
}

/** Sends a report; network failures become an outcome too (the dialog stays open to retry). */
export async function sendReport(
  body: Record<string, string>,
  post: typeof fetch = (...args) => fetch(...args),
): Promise<ReportOutcome> {
  try {
    const response = await post(REPORTS_ENDPOINT, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => null);
    return reportOutcome(response.status, answer, response.headers.get("Retry-After"));
  } catch {
    return { ok: false, message: "No connection: the report was not sent. Try again." };
  }
}
