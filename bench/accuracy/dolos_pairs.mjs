// Dolos (npm @dodona/dolos-lib) on a set of files: the fragments it finds between requested file pairs.
// usage: node dolos_pairs.mjs REQUEST.json OUT.json
//   REQUEST: {"files": [path, ...], "pairs": [[pathA, pathB], ...]}
//   OUT: [{"left": path, "right": path, "similarity": s, "fragments": [[lStart, lEnd, rStart, rEnd], ...]}]
// Rows are 1-based and inclusive, as provscan reports lines.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(process.env.DOLOS_MODULES + "/");
const { Dolos } = await import(require.resolve("@dodona/dolos-lib"));
const request = JSON.parse(readFileSync(process.argv[2], "utf8"));
const wanted = new Set(request.pairs.map(([a, b]) => a + "\u0000" + b));
const dolos = new Dolos({ language: "python" });
const report = await dolos.analyzePaths(request.files);
const out = [];
for (const pair of report.allPairs()) {
  const left = pair.leftFile.path, right = pair.rightFile.path;
  const forward = wanted.has(left + "\u0000" + right), backward = wanted.has(right + "\u0000" + left);
  if (!forward && !backward) continue;
  const fragments = pair.buildFragments().map((f) => [
    f.leftSelection.startRow + 1, f.leftSelection.endRow + 1, f.rightSelection.startRow + 1, f.rightSelection.endRow + 1]);
  out.push({ left, right, similarity: pair.similarity, fragments });
}
writeFileSync(process.argv[3], JSON.stringify(out));
