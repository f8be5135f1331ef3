import { startSongPage } from "../song-page";

startSongPage();
