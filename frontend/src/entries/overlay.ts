import { readJson } from "../dom";
import { startOverlay } from "../overlay-page";

const config = readJson<{ room_id: string; share_token: string | null }>("room-config");
if (config) startOverlay(config.room_id, config.share_token);
