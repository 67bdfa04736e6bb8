// `npm run build` writes the terminal to dist/, which `bourse serve` serves at / (setting
// web-dir). `npm run dev` serves it with hot reload and forwards the API (HTTP and WebSocket)
// to a server on 127.0.0.1:8080 (`cargo run --release -p bourse-gateway --bin bourse -- serve`).
import { defineConfig } from 'vite';

export default defineConfig({
  server: {
    proxy: {
      '/api': { target: 'http://127.0.0.1:8080', ws: true },
    },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // lightweight-charts is most of the bundle (about 170 kB, 55 kB gzipped).
    chunkSizeWarningLimit: 400,
  },
});
