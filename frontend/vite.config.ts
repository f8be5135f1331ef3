// Builds the browser app into webapp/static/dist/ (gitignored), which Django serves as static
// files: one ES module per page (room, overlay, song) plus shared chunks. Stable entry names, so
// templates can say {% static 'dist/room.js' %}; service mode's manifest storage hashes them.
import { resolve } from "node:path";
import { defineConfig } from "vitest/config";

export default defineConfig({
  build: {
    outDir: resolve(__dirname, "../webapp/static/dist"),
    emptyOutDir: true,
    target: "es2022",
    manifest: true,
    sourcemap: true,
    modulePreload: false,
    rollupOptions: {
      input: {
        room: resolve(__dirname, "src/entries/room.ts"),
        overlay: resolve(__dirname, "src/entries/overlay.ts"),
        song: resolve(__dirname, "src/entries/song.ts"),
        report: resolve(__dirname, "src/entries/report.ts"),
      },
      output: {
        entryFileNames: "[name].js",
        chunkFileNames: "chunks/[name]-[hash].js",
      },
    },
  },
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
  },
});
