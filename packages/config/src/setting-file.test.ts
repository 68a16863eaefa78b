import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readCertificateBundle, readSettingFile } from "./setting-file";

// Two self-signed CA certificates (public halves only; `openssl req -x509`, valid 100 years).
const CA_A = [
  "-----BEGIN CERTIFICATE-----",
  "MIIBjTCCATOgAwIBAgIUNOh+YGt24Zi+6JCJolEn6GlU7XwwCgYIKoZIzj0EAwIw",
  "GzEZMBcGA1UEAwwQQ29uZmlnIFRlc3QgQ0EgYTAgFw0yNjEyMDUxOTExMDRaGA8y",
  "MTI2MTExMTE5MTEwNFowGzEZMBcGA1UEAwwQQ29uZmlnIFRlc3QgQ0EgYTBZMBMG",
  "ByqGSM49AgEGCCqGSM49AwEHA0IABJ+IqFy+Uhv0kSzjMN9PLYVUUHpURY4WKIez",
  "CHsCaO1LSBBuZPxHTrP7sWI1sjPBAucl42LEeHt72YBJTrqWmXijUzBRMB0GA1Ud",
  "DgQWBBTD6FqDyhN6tEx86r4ZG9LSK3im/jAfBgNVHSMEGDAWgBTD6FqDyhN6tEx8",
  "6r4ZG9LSK3im/jAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIDKA",
  "52mU2pBnEKWSdzB7Ud6FChkql/3uLP2i1b7J5nUmAiEAtw5Noqt7s4FKXG4RVaOB",
  "8iYIEm2BPlLFO3bOAPv/YCk=",
  "-----END CERTIFICATE-----",
].join("\n");
const CA_B = [
  "-----BEGIN CERTIFICATE-----",
  "MIIBjDCCATOgAwIBAgIUOqJjhZQYgg8EqyHdpUOJPaho85UwCgYIKoZIzj0EAwIw",
  "GzEZMBcGA1UEAwwQQ29uZmlnIFRlc3QgQ0EgYjAgFw0yNjEyMDUxOTExMDRaGA8y",
  "MTI2MTExMTE5MTEwNFowGzEZMBcGA1UEAwwQQ29uZmlnIFRlc3QgQ0EgYjBZMBMG",
  "ByqGSM49AgEGCCqGSM49AwEHA0IABJtnicNfGDYSmParq4Ehh84NHsuCAcsizNir",
  "LxrfWQvKOEYy/vfmtdqtinIgd844JL9r9OEmuj1B1wjdilrjedKjUzBRMB0GA1Ud",
  "DgQWBBTsPgt7MLiMBos4XJ0XV94sTeUXQjAfBgNVHSMEGDAWgBTsPgt7MLiMBos4",
  "XJ0XV94sTeUXQjAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIHos",
  "ZpwF5NN33kjEg7iaaNmYhPUMe2t3gSKjnXnykoIdAiBEXIst6ojALnDrxLSiCGIg",
  "B7qc/IG92GLl7hfLOblz5A==",
  "-----END CERTIFICATE-----",
].join("\n");

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "keyway-setting-file-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function fileWith(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

describe("readSettingFile", () => {
  it("names the key and the path when the file is missing", async () => {
    const path = join(dir, "absent.pem");
    await expect(readSettingFile(path, "gateway.ca_cert_path")).rejects.toMatchObject({
      code: "CONFIG_UNREADABLE",
      message: `config error: gateway.ca_cert_path: ${path}: file not found`,
    });
  });
});

describe("readCertificateBundle", () => {
  it("returns every certificate of a PEM bundle, ignoring text around them", async () => {
    const path = await fileWith("bundle.pem", `# internal CAs\n${CA_A}\n\nsubject=B\n${CA_B}\n`);
    const certificates = await readCertificateBundle(path, "gateway.upstream_ca_path");
    expect(certificates).toEqual([`${CA_A}\n`, `${CA_B}\n`]);
  });

  it("refuses a missing file, a file without a certificate and a damaged certificate, naming the key", async () => {
    const key = "gateway.upstream_ca_path";
    const missing = join(dir, "missing.pem");
    await expect(readCertificateBundle(missing, key)).rejects.toMatchObject({
      code: "CONFIG_UNREADABLE",
      message: `config error: ${key}: ${missing}: file not found`,
    });
    const empty = await fileWith("empty.pem", "not a certificate\n");
    await expect(readCertificateBundle(empty, key)).rejects.toMatchObject({
      code: "CONFIG_INVALID",
      message: `config error: ${key}: ${empty}: no PEM certificate (-----BEGIN CERTIFICATE-----) in the file`,
    });
    const damaged = await fileWith("damaged.pem", `${CA_A}\n${CA_B.replace("MIIB", "MIIA")}\n`);
    await expect(readCertificateBundle(damaged, key)).rejects.toMatchObject({
      code: "CONFIG_INVALID",
      message: `config error: ${key}: ${damaged}: certificate 2 is not a valid X.509 certificate`,
    });
  });
});
