import { readJson } from "../dom";
import { wireReports } from "../report-dialog";
import { type RoomConfig, RoomPage } from "../room-page";

const config = readJson<RoomConfig>("room-config");
if (config) {
  const page = new RoomPage(config);
  page.start();
  wireReports();
  // Read by the end-to-end tests and the sync bench (tests/e2e, tests/bench/bench_sync.py).
  (window as unknown as { __chorus: RoomPage }).__chorus = page;
}
