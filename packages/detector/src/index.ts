export { buildAlert, RULESET } from "./alert-builder.js";
export { type Condition, compileCidr, compileCondition, compilePath } from "./condition.js";
export { Detector, type DetectorOptions } from "./engine.js";
export { alertNames, type EvasionCase, type EvasionResult, evasionCases, runEvasionTests } from "./evasion.js";
export { type CompiledRule, loadRulePack, loadRules, RuleLoadError, SHIPPED_RULES_DIR } from "./loader.js";
export { createDetectorMetrics, type DetectorMetrics, type WindowGauges } from "./metrics.js";
export { type DetectionPack, loadDetection } from "./pack.js";
export {
  authenticatedUser,
  containersOf,
  countsInWindows,
  type ExecCommand,
  effectiveUser,
  execCommand,
  failed,
  jsonPatchAsObject,
  refusal,
  requestKey,
} from "./request.js";
export { type RuleDefinition, RuleSchema } from "./rule.js";
export { type RuleTestResult, runRuleTests, runTimedRuleTests, TEST_EVENT_DEFAULTS } from "./rule-tests.js";
export { type DetectorServiceOptions, startDetectorService } from "./service.js";
export { parseSigmaCondition, type SigmaExpr } from "./sigma/condition-parser.js";
export { compileSigmaRule, loadSigmaPack, loadSigmaRules, SHIPPED_SIGMA_DIR, SIGMA_FIELD_MAPPINGS, SigmaLoadError } from "./sigma/sigma.js";
export { StormAggregator, stormHeadId } from "./storm.js";
export { decodePartial, encodePartial, type PartialRecord } from "./windows/bucket.js";
export { ClusterWindows } from "./windows/cluster-windows.js";
export { type CompiledWindowRule, MISSING_KEY_PART, WindowEngine, type WindowEngineOptions, type WindowStats } from "./windows/engine.js";
export { PartialCountCache, partitionOf } from "./windows/partial-cache.js";
export { type TimedRuleDefinition, TimedRuleSchema } from "./windows/window-rule.js";
export { startWindowService, type Tick, type WindowService, type WindowServiceOptions } from "./windows/window-service.js";
