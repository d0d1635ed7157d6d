import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// `npm run dev` proxies the API to `questions serve` (or `ripple dev`) on :3220; `npm run build`
// writes dist/, which `questions serve --static` serves.
export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", emptyOutDir: true },
  server: {
    proxy: {
      "/api": { target: "http://127.0.0.1:3220", ws: true },
      "/http": { target: "http://127.0.0.1:3220" },
    },
  },
});
