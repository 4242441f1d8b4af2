// Builds the static web app into web/dist: the page's JavaScript bundled with esbuild (from the
// repository's pinned npm packages), next to the static files and staticwebapp.config.json that
// Static Web Apps (and the SWA CLI locally) serve as they are. Only sources are committed;
// web/dist is rebuilt by `make dev` and `make test`.
//
//   node devstack/build_web.mjs

import { build } from "esbuild";
import { cp, mkdir, readdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const web = join(root, "web");
const dist = join(web, "dist");

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });

const result = await build({
  entryPoints: [join(web, "src", "app.js")],
  outfile: join(dist, "app.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2022"],
  minify: true,
  sourcemap: "linked",
  legalComments: "linked",
  // A browser bundle: no Node built-ins may leak in unnoticed.
  define: { "process.env.NODE_ENV": '"production"' },
  logLevel: "warning",
  metafile: true,
});

for (const name of await readdir(join(web, "public"))) {
  await cp(join(web, "public", name), join(dist, name), { recursive: true });
}
await cp(join(web, "staticwebapp.config.json"), join(dist, "staticwebapp.config.json"));

const bytes = result.metafile.outputs[Object.keys(result.metafile.outputs).find((f) => f.endsWith("app.js"))].bytes;
console.log(`web/dist built: app.js ${(bytes / 1024).toFixed(1)} KiB`);
