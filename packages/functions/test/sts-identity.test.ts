import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { identifyBySts, isStsUrl } from "../src/agent/sts-identity";

/** A stand-in for STS at the HTTP boundary: it accepts one signature and answers with the caller. */
let sts: { url: string; close(): Promise<void>; calls: number };
beforeAll(async () => {
  let calls = 0;
  const server = createServer((req, res) => {
    calls += 1;
    sts.calls = calls;
    let body = "";
    req.on("data", (chunk) => {
      body += chunk;
    });
    req.on("end", () => {
      if (
        req.headers.authorization !== "AWS4-HMAC-SHA256 valid" ||
        body !== "Action=GetCallerIdentity&Version=2011-06-15"
      ) {
        res
          .writeHead(403)
          .end("<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code></Error></ErrorResponse>");
        return;
      }
      res
        .writeHead(200, { "content-type": "text/xml" })
        .end(
          "<GetCallerIdentityResponse><GetCallerIdentityResult>" +
            "<Arn>arn:aws:sts::123456789012:assumed-role/hearth-production-x86_64/i-0abc123def4567890</Arn>" +
            "<UserId>AROA:i-0abc123def4567890</UserId><Account>123456789012</Account>" +
            "</GetCallerIdentityResult></GetCallerIdentityResponse>",
        );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  sts = {
    url: `http://127.0.0.1:${port}/`,
    calls: 0,
    close: () => new Promise((r) => server.close(() => r())),
  };
});
afterAll(() => sts.close());

const header = (fields: Record<string, unknown>) => Buffer.from(JSON.stringify(fields)).toString("base64");
const signed = (authorization: string, url = sts.url) =>
  header({ url, headers: { authorization }, body: "Action=GetCallerIdentity&Version=2011-06-15" });
const allowFake = { allowUrl: (url: string) => url === sts.url, account: "123456789012" };

describe("instance identity from a signed STS request", () => {
  it("is the instance id in the ARN STS answers with", async () => {
    expect(await identifyBySts(signed("AWS4-HMAC-SHA256 valid"), allowFake)).toBe("i-0abc123def4567890");
  });

  it("is nobody when the caller's role is in another account, whatever its session is named", async () => {
    // Anyone can assume a role of their own account with an instance id as the session name.
    expect(
      await identifyBySts(signed("AWS4-HMAC-SHA256 valid"), { ...allowFake, account: "210987654321" }),
    ).toBeNull();
    expect(
      await identifyBySts(signed("AWS4-HMAC-SHA256 valid"), {
        ...allowFake,
        account: async () => "123456789012",
      }),
    ).toBe("i-0abc123def4567890");
  });

  it("is nobody when STS refuses the signature", async () => {
    expect(await identifyBySts(signed("AWS4-HMAC-SHA256 forged"), allowFake)).toBeNull();
  });

  it("never sends the request anywhere but STS, nor anything but GetCallerIdentity", async () => {
    const before = sts.calls;
    // the fake is not an official endpoint
    expect(await identifyBySts(signed("AWS4-HMAC-SHA256 valid"), { account: "123456789012" })).toBeNull();
    expect(
      await identifyBySts(
        header({ url: sts.url, headers: {}, body: "Action=AssumeRole&Version=2011-06-15" }),
        allowFake,
      ),
    ).toBeNull();
    expect(await identifyBySts("not base64 json", allowFake)).toBeNull();
    expect(await identifyBySts(undefined, allowFake)).toBeNull();
    expect(sts.calls).toBe(before);
  });

  it("accepts only official STS endpoints", () => {
    expect(isStsUrl("https://sts.amazonaws.com/")).toBe(true);
    expect(isStsUrl("https://sts.eu-west-1.amazonaws.com/")).toBe(true);
    expect(isStsUrl("https://sts.cn-north-1.amazonaws.com.cn/")).toBe(true);
    expect(isStsUrl("http://sts.amazonaws.com/")).toBe(false);
    expect(isStsUrl("https://sts.amazonaws.com.evil.example/")).toBe(false);
    expect(isStsUrl("https://sts.amazonaws.com/?Action=GetCallerIdentity")).toBe(false);
    expect(isStsUrl("https://169.254.169.254/")).toBe(false);
  });
});
