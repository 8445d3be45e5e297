// The console's build: one hashed JS and one CSS file into the Python package, where
// `turnout serve` serves them (src/turnout/server/console.py). No inline script, so the
// server's Content-Security-Policy can forbid inline scripts outright.
import { defineConfig } from "vitest/config";

export default defineConfig({
  base: "/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "../src/turnout/console/static",
    emptyOutDir: true,
    assetsDir: "assets",
    modulePreload: { polyfill: false },
    target: "es2022",
    reportCompressedSize: true,
  },
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
  },
});
