export { createAlertOutput, formatAlertLine } from "./alert-output.js";
export { type RunningPipeline, type StageSelection, startPipeline } from "./pipeline.js";
export { setup } from "./setup.js";
