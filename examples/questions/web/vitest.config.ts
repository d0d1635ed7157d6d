import { defineConfig } from "vitest/config";

// The browser test: builds the app and `questions`, serves them over a fresh schema, drives
// Debian's Chromium with playwright-core.
export default defineConfig({
  test: {
    include: ["e2e/**/*.test.ts"],
    environment: "node",
    testTimeout: 120_000,
    hookTimeout: 600_000,
    fileParallelism: false,
  },
});
