export { Detector, type DetectorOptions } from "./engine.js";
export { alertNames, type EvasionCase, type EvasionResult, evasionCases, runEvasionTests } from "./evasion.js";
export { createDetectorMetrics, type DetectorMetrics, detectorMetricsOn } from "./metrics.js";
export { type RuleTestResult, runRuleTests, runTimedRuleTests, TEST_EVENT_DEFAULTS } from "./rule-tests.js";
export { type DetectorServiceOptions, startDetectorService } from "./service.js";
export {
  type DetectionStageOptions,
  DetectorStage,
  detectionDirs,
  detectorOptions,
  WindowStage,
  windowEngineOptions,
} from "./stages.js";
export { startWindowService, type WindowService, type WindowServiceOptions } from "./window-service.js";
