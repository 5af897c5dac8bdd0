// Certificates for a throw-away control plane, made in-process (WebCrypto + @peculiar/x509):
// one CA that signs the apiserver's serving certificate and the client certificates, and a separate
// key pair that signs service-account tokens. ECDSA P-256 throughout; keys are PKCS#8 PEM, which
// Go's keyutil.ParsePrivateKeyPEM accepts.

// @peculiar/x509 resolves its algorithm providers through tsyringe, which needs this polyfill.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto);

const ALG: webcrypto.EcKeyGenParams & webcrypto.EcdsaParams = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
/** Long enough for any test run, short enough that a leaked key is useless. */
const VALIDITY_DAYS = 7;

/** A PEM certificate with its PEM private key. */
export interface CertKeyPair {
  readonly certPem: string;
  readonly keyPem: string;
}

/** Everything the control plane and its clients need. */
export interface ControlPlanePki {
  readonly ca: CertKeyPair;
  /** Serving certificate for kube-apiserver (SANs: localhost, 127.0.0.1, the kubernetes Service names). */
  readonly apiserver: CertKeyPair;
  /** Service-account token signer: PKCS#8 private key and SPKI public key. */
  readonly serviceAccount: { readonly keyPem: string; readonly publicKeyPem: string };
  /** Issues a client certificate for a user (CN) in groups (O). */
  issueClientCert(user: string, groups: readonly string[]): Promise<CertKeyPair>;
}

function toPem(der: ArrayBuffer, label: string): string {
  return x509.PemConverter.encode(der, label) + '\n';
}

async function keyPair(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
}

async function privatePem(key: webcrypto.CryptoKey): Promise<string> {
  return toPem(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

function serial(): string {
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)))
    .toString('hex')
    .replace(/^[89a-f]/, '1');
}

function validity(): { notBefore: Date; notAfter: Date } {
  const notBefore = new Date(Date.now() - 60_000); // tolerate small clock skew between processes
  return { notBefore, notAfter: new Date(notBefore.getTime() + VALIDITY_DAYS * 86_400_000) };
}

/** Escapes a value for an X.500 name string (RFC 4514). */
function rdn(value: string): string {
  return value.replace(/([,+"\\<>;=])/g, '\\$1');
}

/** Generates a fresh CA, apiserver serving certificate and service-account signer. */
export async function createControlPlanePki(serviceIp: string, extraIps: readonly string[] = []): Promise<ControlPlanePki> {
  const caKeys = await keyPair();
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: 'CN=gmt-test-ca,O=gmt-operator tests',
    ...validity(),
    keys: caKeys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });

  async function issue(subject: string, usages: readonly string[], sans?: x509.JsonGeneralNames): Promise<CertKeyPair> {
    const keys = await keyPair();
    const extensions: x509.Extension[] = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([...usages], false),
      await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
    ];
    if (sans !== undefined) extensions.push(new x509.SubjectAlternativeNameExtension(sans, false));
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject,
      issuer: caCert.subject,
      ...validity(),
      publicKey: keys.publicKey,
      signingKey: caKeys.privateKey,
      signingAlgorithm: ALG,
      extensions,
    });
    return { certPem: cert.toString('pem') + '\n', keyPem: await privatePem(keys.privateKey) };
  }

  const apiserver = await issue(
    'CN=kube-apiserver',
    [x509.ExtendedKeyUsage.serverAuth],
    [
      { type: 'dns', value: 'localhost' },
      { type: 'dns', value: 'kubernetes' },
      { type: 'dns', value: 'kubernetes.default' },
      { type: 'dns', value: 'kubernetes.default.svc' },
      { type: 'dns', value: 'kubernetes.default.svc.cluster.local' },
      { type: 'ip', value: '127.0.0.1' },
      { type: 'ip', value: serviceIp },
      ...extraIps.filter((ip) => ip !== '127.0.0.1' && ip !== serviceIp).map((ip) => ({ type: 'ip' as const, value: ip })),
    ],
  );

  const saKeys = await keyPair();
  const serviceAccount = {
    keyPem: await privatePem(saKeys.privateKey),
    publicKeyPem: toPem(await webcrypto.subtle.exportKey('spki', saKeys.publicKey), 'PUBLIC KEY'),
  };

  return {
    ca: { certPem: caCert.toString('pem') + '\n', keyPem: await privatePem(caKeys.privateKey) },
    apiserver,
    serviceAccount,
    issueClientCert: (user, groups) => issue([`CN=${rdn(user)}`, ...groups.map((g) => `O=${rdn(g)}`)].join(','), [x509.ExtendedKeyUsage.clientAuth]),
  };
}
