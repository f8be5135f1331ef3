// Pages whose only script is their "Report" control (profiles).
import { wireReports } from "../report-dialog";

wireReports();
