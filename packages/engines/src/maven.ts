import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { EngineError, run, which } from "./system.js";

function requireMaven(): string {
  const mvn = which("mvn");
  if (!mvn) throw new EngineError("Maven (mvn) is needed to fetch the engines from Maven Central; install it (apt-get install maven).");
  return mvn;
}

function explain(output: string): string {
  const lines = output.split("\n").filter((l) => /ERROR|Could not|refused|denied|not found|timed out/i.test(l));
  return (lines.slice(0, 6).join("\n") || output.slice(-2000)).trim();
}

/** Copies an artifact and its runtime dependencies into `outputDir`, through Maven (so mirrors and proxies apply). */
export function fetchWithDependencies(pomPath: string, dependencies: string[], outputDir: string): void {
  const mvn = requireMaven();
  mkdirSync(dirname(pomPath), { recursive: true });
  const deps = dependencies
    .map((coords) => {
      const [groupId, artifactId, version] = coords.split(":");
      return `<dependency><groupId>${groupId}</groupId><artifactId>${artifactId}</artifactId><version>${version}</version></dependency>`;
    })
    .join("\n    ");
  writeFileSync(
    pomPath,
    `<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.k8s-audit</groupId><artifactId>engine-runtime</artifactId><version>1</version>
  <dependencies>
    ${deps}
  </dependencies>
</project>
`,
  );
  const r = run(mvn, [
    "-B",
    "-q",
    "-f",
    pomPath,
    "dependency:copy-dependencies",
    `-DoutputDirectory=${outputDir}`,
    "-DincludeScope=runtime",
  ]);
  if (r.status !== 0 || !existsSync(outputDir) || readdirSync(outputDir).length === 0) {
    throw new EngineError(`downloading ${dependencies.join(", ")} from Maven Central failed:\n${explain(r.output)}`);
  }
}

/** Copies one artifact (e.g. a zip) into `outputDir`. */
export function fetchArtifact(coords: string, outputDir: string): void {
  const mvn = requireMaven();
  mkdirSync(outputDir, { recursive: true });
  const r = run(mvn, [
    "-B",
    "-q",
    "dependency:copy",
    `-Dartifact=${coords}`,
    `-DoutputDirectory=${outputDir}`,
    "-Dmdep.overWriteIfNewer=true",
  ]);
  if (r.status !== 0) throw new EngineError(`downloading ${coords} from Maven Central failed:\n${explain(r.output)}`);
}
