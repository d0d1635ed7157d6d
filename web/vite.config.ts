import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// `npm run dev` proxies the API to a `ripple serve` on :3210; `npm run build` writes dist/,
// which the Go binary embeds (web/embed.go).
export default defineConfig({
  plugins: [react()],
  // emptyOutDir wipes dist/.keep; the build script writes it back (it is committed).
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false },
  server: {
    proxy: {
      "/api": { target: "http://127.0.0.1:3210", ws: true },
    },
  },
});
