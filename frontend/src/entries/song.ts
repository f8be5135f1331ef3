import { wireReports } from "../report-dialog";
import { startSongPage } from "../song-page";

startSongPage();
wireReports();
