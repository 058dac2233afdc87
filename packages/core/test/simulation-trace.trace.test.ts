import { describe, expect, it } from "vitest";
import { CsvError, parseCsv } from "../src/simulation/trace/csv";
import { parseTrace, TraceError } from "../src/simulation/trace/trace";

const header = "job_id,created_at_s,pipeline_id,cache_key,labels,duration_warm_s,duration_cold_s";

describe("parseCsv", () => {
  const fields = (text: string) => parseCsv(text).map((row) => row.fields);

  it("reads plain rows, with or without a final newline", () => {
    expect(fields("a,b\n1,2\n")).toEqual([
      ["a", "b"],
      ["1", "2"],
    ]);
    expect(fields("a,b\n1,2")).toEqual([
      ["a", "b"],
      ["1", "2"],
    ]);
  });

  it("reads quoted fields with commas, doubled quotes and line breaks", () => {
    expect(fields('id,key\n1,"macOS 14 native, arm64"\n2,"say ""hi"""\n3,"two\nlines"\n')).toEqual([
      ["id", "key"],
      ["1", "macOS 14 native, arm64"],
      ["2", 'say "hi"'],
      ["3", "two\nlines"],
    ]);
  });

  it("accepts CRLF, a BOM, empty fields and blank lines", () => {
    expect(fields('\ufeffa,b,c\r\n1,,3\r\n\r\n"",x,\r\n')).toEqual([
      ["a", "b", "c"],
      ["1", "", "3"],
      ["", "x", ""],
    ]);
  });

  it("numbers rows by the line they start on", () => {
    expect(parseCsv('a\n"x\ny"\nz\n').map((row) => row.line)).toEqual([1, 2, 4]);
  });

  it("rejects malformed quoting, with the line", () => {
    expect(() => parseCsv('a\n"open\n')).toThrow(new CsvError("unterminated quoted field", 2));
    expect(() => parseCsv('a\nx"y\n')).toThrow(CsvError);
    expect(() => parseCsv('a\n"x"y\n')).toThrow(/line 2: unexpected character after a quoted field/);
  });
});

describe("parseTrace", () => {
  it("reads the trace format", () => {
    const trace = parseTrace(
      `${header}\n50100761446,0.0,17631912739,"bitcoin/macOS 14 native, arm64, fuzz",nix;aarch64-linux,843.0,1686.0\n`,
      "t.csv",
    );
    expect(trace).toEqual({
      name: "t.csv",
      resorted: false,
      jobs: [
        {
          id: "50100761446",
          createdAt: 0,
          pipelineId: "17631912739",
          cacheKey: "bitcoin/macOS 14 native, arm64, fuzz",
          labels: ["nix", "aarch64-linux"],
          warmSeconds: 843,
          coldSeconds: 1686,
        },
      ],
    });
  });

  it("takes columns in any order and ignores extra ones", () => {
    const trace = parseTrace(
      "labels,duration_cold_s,note,duration_warm_s,cache_key,pipeline_id,created_at_s,job_id\nnix,20,hi,10,k,p,5,j1\n",
    );
    expect(trace.jobs[0]).toMatchObject({
      id: "j1",
      createdAt: 5,
      warmSeconds: 10,
      coldSeconds: 20,
      labels: ["nix"],
    });
  });

  it("reads empty labels as none", () => {
    expect(parseTrace(`${header}\nj,0,p,k,,1,2\n`).jobs[0]?.labels).toEqual([]);
  });

  it("is empty for a header alone", () => {
    expect(parseTrace(`${header}\n`).jobs).toEqual([]);
  });

  it("sorts rows that are out of time order, stably, and says so", () => {
    const trace = parseTrace(
      `${header}\nc,5,p,k,nix,1,2\na,1,p,k,nix,1,2\nb,5,p,k,nix,1,2\nd,1,p,k,nix,1,2\n`,
    );
    expect(trace.resorted).toBe(true);
    expect(trace.jobs.map((job) => job.id)).toEqual(["a", "d", "c", "b"]);
  });

  it.each([
    ["an empty file", "", /empty file/],
    ["a missing column", "job_id,created_at_s\n", /missing column pipeline_id/],
    ["a short row", `${header}\nj,0,p,k,nix,1\n`, /line 2: 6 fields, the header has 7/],
    ["a duplicate id", `${header}\nj,0,p,k,nix,1,2\nj,1,p,k,nix,1,2\n`, /line 3: duplicate job_id j/],
    ["an empty id", `${header}\n,0,p,k,nix,1,2\n`, /empty job_id/],
    ["a time that is not a number", `${header}\nj,soon,p,k,nix,1,2\n`, /created_at_s must be a non-negative/],
    ["a negative duration", `${header}\nj,0,p,k,nix,-1,2\n`, /duration_warm_s must be a non-negative/],
    ["an empty duration", `${header}\nj,0,p,k,nix,1,\n`, /duration_cold_s must be a non-negative/],
    ["broken quoting", `${header}\nj,0,p,"k,nix,1,2\n`, /unterminated quoted field/],
    ["a hexadecimal time", `${header}\nj,0x10,p,k,nix,1,2\n`, /created_at_s must be a non-negative/],
    ["a signed duration", `${header}\nj,0,p,k,nix,+1,2\n`, /duration_warm_s must be a non-negative/],
    ["a column named twice", `${header},job_id\nj,0,p,k,nix,1,2,k\n`, /column job_id appears twice/],
  ])("rejects %s", (_, text, message) => {
    expect(() => parseTrace(text, "bad.csv")).toThrow(TraceError);
    expect(() => parseTrace(text, "bad.csv")).toThrow(message);
  });
});
