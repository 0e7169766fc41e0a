import { z } from "zod";
import { ConditionSchema } from "../condition.js";
import { RULE_METADATA } from "../rule.js";

/**
 * A windowed detection: events matching `condition` are counted per key (`group_by`) in tumbling event-time windows;
 * a window whose count passes the static floor, and (for `baseline_factor`) is well above the key's own moving
 * average of past windows, raises one alert. Keys are paths into the event; `sourceIP` is the trusted (last) source IP.
 */
export const WindowRuleSchema = z
  .object({
    kind: z.literal("window"),
    ...RULE_METADATA,
    category: z.array(z.string()).default(["api"]),
    type: z.array(z.string()).default(["info"]),
    /** Window length in seconds. */
    window: z.number().int().min(1).max(86_400),
    group_by: z.array(z.string().min(1)).min(1),
    condition: ConditionSchema.optional(),
    /** Count distinct values of this path instead of events (e.g. distinct secrets read). */
    distinct: z.string().optional(),
    threshold: z
      .object({
        /** Static floor: the window's count must reach it. */
        min: z.number().int().min(1),
        /** And be at least this many times the key's moving average of past windows (adaptive baseline). */
        baseline_factor: z.number().min(1).optional(),
        /** Windows of stream time to learn baselines before baseline rules may fire. */
        warmup: z.number().int().min(0).default(3),
        /** Weight of the newest window in the moving average. */
        alpha: z.number().gt(0).lt(1).default(0.3),
      })
      .strict(),
    exclude_system_components: z.boolean().default(true),
  })
  .strict();

export type WindowRuleDefinition = z.infer<typeof WindowRuleSchema>;
