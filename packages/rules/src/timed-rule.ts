import { z } from "zod";
import { type Condition, ConditionSchema, type Predicate } from "./condition.js";
import { RULE_METADATA } from "./rule.js";

/**
 * A timed rule's inline test case: groups of generated events. Each group yields `count` events `every` seconds apart
 * starting `at` seconds into the test, each the group's `event` fields over the test defaults; `{{i}}` in a string
 * value becomes the event's index in its group (distinct names, addresses).
 */
const TimedTestGroupSchema = z
  .object({
    at: z.number().min(0).default(0),
    count: z.number().int().min(1).max(100_000).default(1),
    every: z.number().min(0).default(1),
    event: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();
export type TimedTestGroup = z.infer<typeof TimedTestGroupSchema>;

const TimedTestsSchema = z
  .object({
    fire: z.array(z.array(TimedTestGroupSchema).min(1)).min(1, "a rule needs at least one case that fires"),
    quiet: z.array(z.array(TimedTestGroupSchema).min(1)).min(1, "a rule needs at least one case that stays quiet"),
  })
  .strict();

const TIMED_COMMON = {
  ...RULE_METADATA,
  category: z.array(z.string()).default(["api"]),
  type: z.array(z.string()).default(["info"]),
  group_by: z.array(z.string().min(1)).min(1),
  exclude_system_components: z.boolean().default(true),
  tests: TimedTestsSchema,
};

/**
 * Counts: events matching `condition` are counted per key (`group_by`) in tumbling event-time windows; a window whose
 * count passes the static floor, and (for `baseline_factor`) is well above the key's own moving average of past
 * windows, raises one alert. Keys are paths into the event; `sourceIP` is the trusted (last) source IP.
 */
export const WindowRuleSchema = z
  .object({
    kind: z.literal("window"),
    ...TIMED_COMMON,
    /** Window length in seconds. */
    window: z.number().int().min(1).max(86_400),
    condition: ConditionSchema.optional(),
    /** Count distinct values of this path instead of events (e.g. distinct secrets read). */
    distinct: z.string().optional(),
    /** Count the events matching this condition too, and require their share of the window's events (e.g. 429s). */
    ratio: z
      .object({ condition: ConditionSchema, min: z.number().gt(0).max(1) })
      .strict()
      .optional(),
    threshold: z
      .object({
        /** Static floor: the window's count (distinct values, ratio hits) must reach it. */
        min: z.number().int().min(1),
        /** And be at least this many times the key's moving average of past windows (adaptive baseline). */
        baseline_factor: z.number().min(1).optional(),
        /** Windows of stream time to learn baselines before baseline rules may fire. */
        warmup: z.number().int().min(0).default(3),
        /** Weight of the newest window in the moving average. */
        alpha: z.number().gt(0).lt(1).default(0.3),
      })
      .strict(),
  })
  .strict();

/**
 * Sequences: the steps' conditions matched by the same key within `within` seconds, in the order written (or in any
 * order with `ordered: false`). Evaluated in event-time order once the stream has moved a minute past the events,
 * so out-of-order arrival does not change the answer.
 */
export const SequenceRuleSchema = z
  .object({
    kind: z.literal("sequence"),
    ...TIMED_COMMON,
    within: z.number().int().min(1).max(86_400),
    ordered: z.boolean().default(true),
    steps: z
      .array(z.object({ name: z.string().min(1), condition: ConditionSchema }).strict())
      .min(2)
      .max(8),
  })
  .strict();

/**
 * Silence: a key (a cluster) that was sending stops for longer than `gap` seconds. In the live stream it is noticed by
 * the clock; in archived logs by a gap in event time. Both give one alert with the same id (rule, key, last event).
 */
export const SilenceRuleSchema = z
  .object({
    kind: z.literal("silence"),
    ...TIMED_COMMON,
    gap: z
      .number()
      .int()
      .min(10)
      .max(7 * 86_400),
    /** Only a key that has sent at least this many events is watched: one test request is not a stream. */
    min_events: z.number().int().min(1).default(1),
    condition: ConditionSchema.optional(),
    exclude_system_components: z.boolean().default(false),
  })
  .strict();

export const TimedRuleSchema = z.discriminatedUnion("kind", [WindowRuleSchema, SequenceRuleSchema, SilenceRuleSchema]);

export type WindowRuleDefinition = z.infer<typeof WindowRuleSchema>;
export type SequenceRuleDefinition = z.infer<typeof SequenceRuleSchema>;
export type SilenceRuleDefinition = z.infer<typeof SilenceRuleSchema>;
export type TimedRuleDefinition = z.infer<typeof TimedRuleSchema>;

/** The condition an event must meet to be counted by the rule at all (sequences: any step); undefined: every event. */
export function admissionCondition(definition: TimedRuleDefinition): Condition | undefined {
  if (definition.kind === "sequence") return { any: definition.steps.map((s) => s.condition) };
  return definition.condition;
}

/** A timed rule compiled against its pack: what the window engine runs. */
export interface CompiledWindowRule {
  readonly definition: TimedRuleDefinition;
  readonly source: string;
  /** Whether the rule counts the event at all (sequences: any step matches); absent when every event counts. */
  readonly matches?: Predicate;
  /** The system_routine macro, when the rule excludes the cluster's routine: one shared predicate, tested once per event. */
  readonly isSystemRoutine?: Predicate;
  /** Ratio rules: the events that count towards the share (e.g. 429 responses). */
  readonly ratio?: Predicate;
  /** Sequence rules: one predicate per step. */
  readonly steps?: readonly Predicate[];
}
