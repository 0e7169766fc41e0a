import type { Alert, AuditEvent } from "@k8s-audit/core";
import type { CompiledWindowRule } from "@k8s-audit/rules";
import { WindowEngine, type WindowEngineOptions } from "./engine.js";
import { sumGauges, type WindowGauges, type WindowStats } from "./stats.js";

/**
 * The in-process window engines, one per cluster: each cluster's windows close by its own event time, so a cluster
 * whose clock runs behind (or stops) never has its events dropped as late because another cluster's clock is ahead.
 */
export class ClusterWindows {
  private readonly engines = new Map<string, WindowEngine>();
  private last?: { cluster: string; engine: WindowEngine };

  constructor(
    readonly rules: readonly CompiledWindowRule[],
    private readonly options: WindowEngineOptions = {},
  ) {}

  offer(event: AuditEvent): Alert[] {
    return this.engineFor(event.cluster ?? "default").offer(event);
  }

  /** Closes every cluster's open windows (end of a replay or a test), clusters in name order. */
  flush(): Alert[] {
    return this.sorted().flatMap((engine) => engine.flush());
  }

  /** Silence by the clock, in every cluster. */
  idle(now?: number): Alert[] {
    return this.sorted().flatMap((engine) => engine.idle(now));
  }

  get stats(): WindowStats {
    const { openKeys: _open, rememberedKeys: _remembered, ...stats } = this.gauges();
    return stats;
  }

  gauges(): WindowGauges {
    return sumGauges([...this.engines.values()].map((engine) => engine.gauges()));
  }

  private engineFor(cluster: string): WindowEngine {
    if (this.last?.cluster === cluster) return this.last.engine;
    let engine = this.engines.get(cluster);
    if (!engine) {
      engine = new WindowEngine(this.rules, this.options);
      this.engines.set(cluster, engine);
    }
    this.last = { cluster, engine };
    return engine;
  }

  private sorted(): WindowEngine[] {
    return [...this.engines.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, engine]) => engine);
  }
}
