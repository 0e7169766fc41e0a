import { type CompiledRule, loadRulePack, SHIPPED_RULES_DIR } from "./loader.js";
import { loadSigmaPack } from "./sigma/sigma.js";
import type { CompiledWindowRule } from "./timed-rule.js";

export interface DetectionPack {
  /** Per-event rules: the shipped pack, the site's rules, and Sigma rules. */
  rules: CompiledRule[];
  /** Timed rules: windowed counts, sequences, silence, and Sigma correlations. */
  windowRules: CompiledWindowRule[];
}

/** Everything the detector runs: the shipped rules plus a site's rule folders and Sigma folders. */
export function loadDetection(options: { rulesDirs?: string[]; sigmaDirs?: string[] } = {}): DetectionPack {
  const native = loadRulePack([SHIPPED_RULES_DIR, ...(options.rulesDirs ?? [])]);
  const sigma = options.sigmaDirs?.length ? loadSigmaPack(options.sigmaDirs) : { rules: [], windowRules: [] };
  return { rules: [...native.rules, ...sigma.rules], windowRules: [...native.windowRules, ...sigma.windowRules] };
}
