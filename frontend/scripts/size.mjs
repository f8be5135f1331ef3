// Prints the gzipped size of each page's initial JavaScript (its entry plus every chunk it
// imports statically), from Vite's manifest; the last line is JSON. Writes dist/size.json.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const dist = new URL("../../webapp/static/dist/", import.meta.url).pathname;
const manifest = JSON.parse(readFileSync(join(dist, ".vite/manifest.json"), "utf8"));
const LIMIT_KB = 200;

function files(key, seen = new Set()) {
  if (seen.has(key)) return seen;
  seen.add(key);
  for (const dep of manifest[key].imports ?? []) files(dep, seen);
  return seen;
}

const pages = {};
for (const [key, entry] of Object.entries(manifest)) {
  if (!entry.isEntry) continue;
  let raw = 0;
  let gzip = 0;
  for (const k of files(key)) {
    const bytes = readFileSync(join(dist, manifest[k].file));
    raw += bytes.length;
    gzip += gzipSync(bytes, { level: 9 }).length;
  }
  pages[entry.name] = { raw_kb: +(raw / 1024).toFixed(1), gzip_kb: +(gzip / 1024).toFixed(1) };
  console.log(`${entry.name.padEnd(8)} initial JS ${pages[entry.name].gzip_kb} KB gzipped (${pages[entry.name].raw_kb} KB raw)`);
}
const result = { room_initial_js_gzip_kb: pages.room?.gzip_kb, limit_kb: LIMIT_KB, pages };
writeFileSync(join(dist, "size.json"), JSON.stringify(result, null, 2));
console.log(JSON.stringify(result));
if (!(pages.room?.gzip_kb <= LIMIT_KB)) {
  console.error(`room page initial JS is over ${LIMIT_KB} KB gzipped`);
  process.exit(1);
}
