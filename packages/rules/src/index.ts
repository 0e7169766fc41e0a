export { type AlertingRule, alertEnvelope, buildAlert, type EnvelopeFields, RULESET, threatOf } from "./alert-builder.js";
export {
  type CompileContext,
  type Condition,
  compileCidr,
  compileCondition,
  compilePath,
  compileVisitor,
  type Predicate,
} from "./condition.js";
export { type CompiledRule, compileTimedRule, loadRulePack, loadRules, RuleLoadError, SHIPPED_RULES_DIR } from "./loader.js";
export { type DetectionPack, loadDetection } from "./pack.js";
export {
  authenticatedUser,
  containersOf,
  countsInWindows,
  type ExecCommand,
  effectiveUser,
  execCommand,
  jsonPatchAsObject,
  refusal,
  requestKey,
} from "./request.js";
export { type RuleDefinition, RuleSchema } from "./rule.js";
export { parseSigmaCondition, type SigmaExpr } from "./sigma/condition-parser.js";
export { compileSigmaRule, loadSigmaPack, loadSigmaRules, SHIPPED_SIGMA_DIR, SIGMA_FIELD_MAPPINGS, SigmaLoadError } from "./sigma/sigma.js";
export { compileGlob, compileRegex, REGEX_INPUT_CAP } from "./text-match.js";
export {
  admissionCondition,
  type CompiledWindowRule,
  type TimedRuleDefinition,
  TimedRuleSchema,
  type TimedTestGroup,
} from "./timed-rule.js";
