import { defineConfig } from "vitest/config";

// The browser end-to-end suite: builds and starts `ripple serve`, drives Chromium.
export default defineConfig({
  test: {
    include: ["e2e/**/*.test.ts"],
    environment: "node",
    testTimeout: 60_000,
    hookTimeout: 300_000,
    teardownTimeout: 30_000,
    fileParallelism: false,
  },
});
