import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { findJdk, portOpen } from "../src/system.js";

describe("engine prerequisites", () => {
  it("names what is missing when no JDK fits", () => {
    expect(() => findJdk("Elasticsearch 99", 99, 120, "ES_JAVA_HOME")).toThrow(
      /Elasticsearch 99 needs a JDK 99–120; none found \(looked at \$ES_JAVA_HOME, \$JAVA_HOME, \/usr\/lib\/jvm\/\*, java on PATH\)/,
    );
  });

  it("sees a port held by another process", async () => {
    const server = createServer().listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    const port = (server.address() as { port: number }).port;
    expect(await portOpen(port)).toBe(true);
    server.close();
    await new Promise((r) => server.once("close", r));
    expect(await portOpen(port)).toBe(false);
  });
});
