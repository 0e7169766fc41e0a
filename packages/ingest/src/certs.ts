import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { join } from "node:path";
import forge from "node-forge";

export interface Pem {
  cert: string;
  key: string;
}

export interface IssueOptions {
  commonName: string;
  organizationalUnit?: string;
  /** DNS names and IP addresses for a server certificate. */
  altNames?: string[];
  usage: "server" | "client";
  notBefore?: Date;
  notAfter?: Date;
}

const DAY = 86_400_000;

function newKey(): { forgeKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey; pem: string } {
  // Node's native keygen (fast), converted for forge, which only builds and signs the certificate.
  const { privateKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  const forgeKey = forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey;
  return { forgeKey, publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e), pem: privateKey };
}

function serial(): string {
  // Positive, 16 bytes: the first bit cleared so DER does not read it as negative.
  const b = randomBytes(16);
  b[0] = (b[0] ?? 0) & 0x7f;
  return b.toString("hex");
}

export function createCertificateAuthority(commonName = "k8s-audit-pipeline CA", notAfter = new Date(Date.now() + 3650 * DAY)): Pem {
  const key = newKey();
  const cert = forge.pki.createCertificate();
  cert.publicKey = key.publicKey;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(Date.now() - DAY);
  cert.validity.notAfter = notAfter;
  const subject = [{ name: "commonName", value: commonName }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  cert.sign(key.forgeKey, forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: key.pem };
}

/** A server or client certificate signed by `ca`. Validity can be set in the past (tests of expired certificates). */
export function issueCertificate(ca: Pem, options: IssueOptions): Pem {
  const caCert = forge.pki.certificateFromPem(ca.cert);
  const caKey = forge.pki.privateKeyFromPem(ca.key);
  const key = newKey();
  const cert = forge.pki.createCertificate();
  cert.publicKey = key.publicKey;
  cert.serialNumber = serial();
  cert.validity.notBefore = options.notBefore ?? new Date(Date.now() - DAY);
  cert.validity.notAfter = options.notAfter ?? new Date(Date.now() + 825 * DAY);
  cert.setSubject([
    { name: "commonName", value: options.commonName },
    ...(options.organizationalUnit ? [{ name: "organizationalUnitName", value: options.organizationalUnit }] : []),
  ]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: false },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: options.usage === "server", clientAuth: options.usage === "client" },
    ...(options.altNames?.length
      ? [{ name: "subjectAltName", altNames: options.altNames.map((n) => (isIP(n) ? { type: 7, ip: n } : { type: 2, value: n })) }]
      : []),
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: key.pem };
}

/**
 * The operator kit's certificates: a CA, a serving certificate for the ingest (SANs = the hosts the apiserver dials),
 * and a client certificate for the apiserver. Writes PEM files into `dir` (keys 0600) and returns their paths.
 */
export function writeKitCertificates(dir: string, options: { hosts: string[]; clientName: string; cluster?: string }) {
  mkdirSync(dir, { recursive: true });
  const ca = createCertificateAuthority();
  const server = issueCertificate(ca, { commonName: options.hosts[0] ?? "k8s-audit-ingest", altNames: options.hosts, usage: "server" });
  const client = issueCertificate(ca, { commonName: options.clientName, organizationalUnit: options.cluster, usage: "client" });
  const files = {
    ca: join(dir, "ca.crt"),
    serverCert: join(dir, "ingest.crt"),
    serverKey: join(dir, "ingest.key"),
    clientCert: join(dir, "apiserver-client.crt"),
    clientKey: join(dir, "apiserver-client.key"),
  };
  writeFileSync(files.ca, ca.cert);
  writeFileSync(join(dir, "ca.key"), ca.key, { mode: 0o600 });
  writeFileSync(files.serverCert, server.cert);
  writeFileSync(files.serverKey, server.key, { mode: 0o600 });
  writeFileSync(files.clientCert, client.cert);
  writeFileSync(files.clientKey, client.key, { mode: 0o600 });
  return files;
}
