import { defineConfig } from "vitest/config";

// The browser end-to-end suite (builds and starts `ripple serve`, drives Chromium) and the
// app's unit tests (src/**/*.test.ts).
export default defineConfig({
  test: {
    include: ["e2e/**/*.test.ts", "src/**/*.test.ts"],
    environment: "node",
    testTimeout: 60_000,
    hookTimeout: 300_000,
    teardownTimeout: 30_000,
    fileParallelism: false,
  },
});
