/** MITRE ATT&CK Enterprise tactics, so rules name tactics by id and alerts still carry names and links. */
export const TACTICS: Record<string, string> = {
  TA0043: "Reconnaissance",
  TA0042: "Resource Development",
  TA0001: "Initial Access",
  TA0002: "Execution",
  TA0003: "Persistence",
  TA0004: "Privilege Escalation",
  TA0005: "Defense Evasion",
  TA0006: "Credential Access",
  TA0007: "Discovery",
  TA0008: "Lateral Movement",
  TA0009: "Collection",
  TA0011: "Command and Control",
  TA0010: "Exfiltration",
  TA0040: "Impact",
};

export function tacticReference(id: string): string {
  return `https://attack.mitre.org/tactics/${id}/`;
}

export function techniqueReference(id: string): string {
  return `https://attack.mitre.org/techniques/${id.replace(".", "/")}/`;
}
