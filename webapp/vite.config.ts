// Builds the web app into the Python package, where `hades-perception serve` finds it
// (hades_perception/api/web; not committed: scripts/setup.sh builds it). `npm run dev`
// serves it with hot reload and sends the API's routes to a server on port 8000.
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

const api = "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [react()],
  base: "./",
  build: {
    outDir: "../hades_perception/hades_perception/api/web",
    emptyOutDir: true,
    sourcemap: false,
  },
  server: { host: "127.0.0.1", proxy: { "/v1": api, "/v2": api } },
});
