export { buildAlert, RULESET } from "./alert-builder.js";
export { type Condition, compileCidr, compileCondition, compilePath } from "./condition.js";
export { Detector, type DetectorOptions } from "./engine.js";
export { type CompiledRule, loadRules, RuleLoadError, SHIPPED_RULES_DIR } from "./loader.js";
export { type RuleDefinition, RuleSchema } from "./rule.js";
export { type RuleTestResult, runRuleTests } from "./rule-tests.js";
export { type DetectorServiceOptions, startDetectorService } from "./service.js";
export { StormAggregator } from "./storm.js";
