export { createAlertOutput, formatAlertLine } from "./alert-output.js";
export { type RunningPipeline, startPipeline, type StageSelection } from "./pipeline.js";
