// The report dialog: reason + optional details, sent with sendReport (report.ts), the server's
// answer shown in its status line. A native modal <dialog>: focus moves in and stays there, Esc
// closes it, and focus goes back to the button that opened it. Any element with data-report-type
// and data-report-id opens it (wireReports): the templates' buttons (songs, rooms, profiles:
// webapp/templates/_report_button.html) and the ballot's, which the room page draws.

import { h } from "./dom";
import {
  MAX_DETAILS_CHARS,
  REPORT_REASONS,
  ReportInputError,
  type ReportTarget,
  reportBody,
  reportTargetFrom,
  sendReport,
} from "./report";

/** One per page, made on first use. */
class ReportDialog {
  readonly el: HTMLDialogElement;
  private readonly heading = h("h2", { id: "report-h" });
  private readonly reason: HTMLSelectElement;
  private readonly details: HTMLTextAreaElement;
  private readonly status = h("p", { id: "report-status", role: "status", class: "status-line" });
  private readonly send = h("button", { type: "submit", class: "primary" }, "Send report");
  private readonly cancel = h("button", { type: "button" }, "Cancel");
  private target: ReportTarget | null = null;
  private trigger: HTMLElement | null = null;

  constructor() {
    this.reason = h(
      "select",
      { id: "report-reason", name: "reason", required: true },
      h("option", { value: "" }, "Choose a reason"),
      ...REPORT_REASONS.map((r) => h("option", { value: r.value }, r.label)),
    );
    this.details = h("textarea", {
      id: "report-details",
      name: "details",
      rows: 3,
      maxlength: MAX_DETAILS_CHARS,
    });
    const form = h(
      "form",
      { class: "stack", novalidate: true },
      this.heading,
      h(
        "p",
        { class: "meta small", id: "report-help" },
        "The moderators read every report. Reporting the same thing again updates your report.",
      ),
      h("div", { class: "field" }, h("label", { for: "report-reason" }, "Why?"), this.reason),
      h(
        "div",
        { class: "field" },
        h("label", { for: "report-details" }, "What should the moderators know? (optional)"),
        this.details,
      ),
      this.status,
      h("div", { class: "row" }, this.send, this.cancel),
    );
    this.el = h(
      "dialog",
      { class: "report-dialog", "aria-labelledby": "report-h", "aria-describedby": "report-help" },
      form,
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.submit();
    });
    this.cancel.addEventListener("click", () => this.el.close());
    this.el.addEventListener("close", () => this.trigger?.focus());
    document.body.append(this.el);
  }

  open(target: ReportTarget, trigger: HTMLElement): void {
    if (this.target?.type !== target.type || this.target.id !== target.id) {
      this.reason.value = "";
      this.details.value = "";
    }
    this.target = target;
    this.trigger = trigger;
    this.heading.textContent = `Report ${target.what}`;
    this.say("");
    this.cancel.textContent = "Cancel";
    this.send.disabled = false;
    this.el.showModal();
    this.reason.focus();
  }

  private say(text: string): void {
    this.status.textContent = text;
  }

  private async submit(): Promise<void> {
    if (!this.target) return;
    let body: Record<string, string>;
    try {
      body = reportBody(this.target, this.reason.value, this.details.value);
    } catch (error) {
      if (!(error instanceof ReportInputError)) throw error;
      const field = error.field === "reason" ? this.reason : this.details;
      field.setAttribute("aria-invalid", "true");
      field.focus();
      this.say(error.message);
      return;
    }
    this.reason.removeAttribute("aria-invalid");
    this.details.removeAttribute("aria-invalid");
    this.send.disabled = true;
    this.say("Sending…");
    const outcome = await sendReport(body);
    this.send.disabled = false;
    this.say(outcome.message);
    if (outcome.ok) {
      this.cancel.textContent = "Close";
      this.cancel.focus();
    }
  }
}

let dialog: ReportDialog | null = null;

/** Opens the dialog from any click on an element with data-report-type/-id (those drawn later
 * included); the dialog itself is made on the first such click. */
export function wireReports(root: Document = document): void {
  root.addEventListener("click", (event) => {
    const button = (event.target as Element | null)?.closest?.<HTMLElement>("[data-report-type]");
    const target = button ? reportTargetFrom(button.dataset) : null;
    if (!button || !target) return;
    event.preventDefault();
    dialog ??= new ReportDialog();
    dialog.open(target, button);
  });
}
