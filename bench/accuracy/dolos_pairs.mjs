// Dolos (npm @dodona/dolos-lib) on requested file pairs: the fragments it finds between them.
// usage: node dolos_pairs.mjs REQUEST.json OUT.json
//   REQUEST: {"pairs": [[pathA, pathB], ...]}
//   OUT: [{"left": path, "right": path, "similarity": s, "fragments": [[lStart, lEnd, rStart, rEnd], ...]}]
// Dolos is all-pairs: the pairs are grouped by their first file, and each group (that file and
// its partners) is analysed on its own in this one process; fragments are built only for the
// requested pairs. Rows are 1-based and inclusive, as provscan reports lines.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(process.env.DOLOS_MODULES + "/");
const { Dolos } = await import(require.resolve("@dodona/dolos-lib"));
const request = JSON.parse(readFileSync(process.argv[2], "utf8"));
const groups = new Map();
for (const [a, b] of request.pairs) {
  if (!groups.has(a)) groups.set(a, new Set());
  groups.get(a).add(b);
}
const out = [];
for (const [a, partners] of groups) {
  const dolos = new Dolos({ language: "python" });
  const report = await dolos.analyzePaths([a, ...partners]);
  for (const pair of report.allPairs()) {
    const left = pair.leftFile.path, right = pair.rightFile.path;
    if (left !== a && right !== a) continue;
    const fragments = pair.buildFragments().map((f) => [
      f.leftSelection.startRow + 1, f.leftSelection.endRow + 1, f.rightSelection.startRow + 1, f.rightSelection.endRow + 1]);
    out.push({ left, right, similarity: pair.similarity, fragments });
  }
}
writeFileSync(process.argv[3], JSON.stringify(out));
